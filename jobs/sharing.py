"""Share links of a job's report page: read-only, no login, signed.

A link's token is signed with Django's signing (SECRET_KEY, a salt of its own) over the job's id, the
job's share nonce and the link's end. The nonce is stored on the job row: revoking rotates it, so every
link of that job stops working at once; a tampered, expired or revoked token reads as no job at all
(the page answers 404 and says nothing of why). Pure functions of their arguments: the row is read
and written by jobs.selectors and jobs.services.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "scriptripper.jobs.share"


@dataclass(frozen=True)
class ShareClaim:
    """What a valid token says: which job, under which nonce."""

    job_id: uuid.UUID
    nonce: str


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def share_token(*, job_id: uuid.UUID | str, nonce: str, expires_at: datetime) -> str:
    payload = {"j": uuid.UUID(str(job_id)).hex, "n": nonce, "e": int(expires_at.timestamp())}
    return signing.Signer(salt=SALT).sign_object(payload)


def read_share_token(token: str, *, now: datetime) -> ShareClaim | None:
    """The claim of a genuine, unexpired token; None for anything else."""
    try:
        payload = signing.Signer(salt=SALT).unsign_object(token)
        job_id, nonce, ends = uuid.UUID(hex=payload["j"]), payload["n"], payload["e"]
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        return None
    if not isinstance(nonce, str) or not nonce or not isinstance(ends, int) or ends <= now.timestamp():
        return None
    return ShareClaim(job_id=job_id, nonce=nonce)


def share_path(*, job_id: uuid.UUID | str, nonce: str, expires_at: datetime) -> str:
    return reverse("job-report", kwargs={"token": share_token(job_id=job_id, nonce=nonce, expires_at=expires_at)})


def absolute_url(path: str, request=None) -> str:
    """`path` on the address clients reach this server at: PUBLIC_BASE_URL when set, else the request's own;
    with neither (a webhook, the CLI) the path alone."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    return request.build_absolute_uri(path) if request is not None else path


def expiry_timestamp(value: datetime) -> datetime:
    """A link's end as its token carries it: whole seconds."""
    return datetime.fromtimestamp(int(value.timestamp()), tz=UTC)
