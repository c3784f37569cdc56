"""Job callbacks in the Standard Webhooks format.

When a job reaches a final state and has a `callback_url`, a `WebhookDelivery`
row is scheduled with the job document as its body. The worker that
finished the job tries it at once (jobs.worker.lifecycle.webhooks_deliver_now); failures (and deliveries
scheduled outside a worker, e.g. on cancel) are retried by the reconciler thread with backoff for
about an hour (settings.WEBHOOK_RETRY_DELAYS), never by RQ's scheduler, which
`rqworker` does not start.

Callback URLs must be http(s) and must not point at private, loopback,
link-local or otherwise internal addresses (checked when submitted and again
when delivered, since DNS can change in between), unless
WEBHOOK_ALLOW_PRIVATE_URLS is on.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from jobs.documents import job_document
from jobs.models import Job, WebhookDelivery
from scriptripper.renderers import JSONRenderer

logger = logging.getLogger(__name__)

# While one process delivers, others leave the row alone for this long.
DELIVERY_LEASE = timedelta(seconds=60)
MAX_ERROR_CHARS = 500


class CallbackUrlError(ValueError):
    pass


def _address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_callback_url(url: str) -> str:
    """The URL if it may be called back; CallbackUrlError (a sentence for the user) otherwise."""
    url = url.strip()
    if len(url) > 2000:
        raise CallbackUrlError("must be at most 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackUrlError("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise CallbackUrlError("has no host")
    if parts.username or parts.password:
        raise CallbackUrlError("must not contain credentials")
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise CallbackUrlError(f"host {parts.hostname!r} does not resolve") from None
    if not infos or not all(_address_is_public(info[4][0]) for info in infos):
        raise CallbackUrlError("must not point at a private, loopback or link-local address")
    return url


def render_job(job: Job) -> str:
    # The API's own renderer: Decimal costs become JSON numbers, datetimes ISO 8601.
    return JSONRenderer().render(job_document(job)).decode()


def webhook_schedule(*, job: Job) -> WebhookDelivery | None:
    """Schedule the callback of a job that just reached a final state (no-op without callback_url)."""
    if not job.callback_url or not job.is_final:
        return None
    return WebhookDelivery.objects.create(
        job=job, url=job.callback_url, message_id=f"msg_{uuid.uuid4().hex}", payload=render_job(job),
        next_attempt_at=timezone.now(),
    )


def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Take a due delivery for DELIVERY_LEASE (conditional update), so two processes never send it at once."""
    now = timezone.now()
    changed = WebhookDelivery.objects.filter(
        id=delivery_id, delivered_at__isnull=True, next_attempt_at__lte=now,
    ).update(next_attempt_at=now + DELIVERY_LEASE)
    if not changed:
        return None
    return WebhookDelivery.objects.select_related("job__owner").filter(id=delivery_id).first()


def _post(delivery: WebhookDelivery, secret: str) -> tuple[int | None, str]:
    """One signed POST: (HTTP status or None, error text or "")."""
    if not settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        validate_callback_url(delivery.url)  # DNS may have changed since submission
    now = timezone.now()
    signature = Webhook(secret).sign(delivery.message_id, now, delivery.payload)
    request = urllib.request.Request(delivery.url, data=delivery.payload.encode(), method="POST", headers={
        "content-type": "application/json",
        "user-agent": "ScriptRipper-Webhooks/1.0",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    })
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}"[:MAX_ERROR_CHARS]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead to an internal address the URL check never saw.
    def redirect_request(self, *args, **kwargs):
        return None


def webhook_deliver(*, delivery_id: int) -> bool | None:
    """Try one due delivery. True delivered, False failed (retry scheduled or given up), None not due/taken."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    try:
        status, error = _post(delivery, delivery.job.owner.webhook_secret)
    except CallbackUrlError as exc:
        status, error = None, f"refused: the callback URL {exc}"
    attempts = delivery.attempts + 1
    now = timezone.now()
    if status is not None and 200 <= status < 300:
        WebhookDelivery.objects.filter(id=delivery.id).update(
            attempts=attempts, last_status=status, last_error="", delivered_at=now, next_attempt_at=None)
        logger.info("webhook delivered", extra={"job_id": str(delivery.job_id), "attempts": attempts})
        return True
    delays = settings.WEBHOOK_RETRY_DELAYS
    next_at = now + timedelta(seconds=delays[attempts - 1]) if attempts <= len(delays) else None
    WebhookDelivery.objects.filter(id=delivery.id).update(
        attempts=attempts, last_status=status, last_error=error or f"HTTP {status}", next_attempt_at=next_at)
    logger.warning("webhook delivery failed (%s); %s", error or f"HTTP {status}",
                   "will retry" if next_at else "giving up", extra={"job_id": str(delivery.job_id)})
    return False


def webhooks_deliver_due(*, limit: int = 50) -> int:
    """Deliver the deliveries that are due (the reconciler calls this). Returns how many were tried."""
    due = list(WebhookDelivery.objects.filter(
        Q(delivered_at__isnull=True) & Q(next_attempt_at__lte=timezone.now()),
    ).order_by("next_attempt_at").values_list("id", flat=True)[:limit])
    tried = 0
    for delivery_id in due:
        if webhook_deliver(delivery_id=delivery_id) is not None:
            tried += 1
    return tried
