"""Reads on analysis profiles: what a user may see, and finding one by name or id."""

from __future__ import annotations

import datetime as dt
import functools
from contextlib import closing

from django.db.models import Q, QuerySet

from analysis.analyze import provider_health
from analysis.clients import endpoints, provider_configured
from analysis.engine.catalogue import list_models, utc_today
from analysis.engine.health import OK, ModelHealth
from analysis.engine.providers import PROVIDER_NAMES
from analysis.models import AnalysisProfile
from scriptripper.monitoring import redis_connection


def profiles_visible_to(user) -> QuerySet[AnalysisProfile]:
    """The user's own profiles and the built-in ones (never another user's)."""
    return AnalysisProfile.objects.filter(Q(owner=user) | Q(owner__isnull=True))


def profile_for_user(*, user, profile_id) -> AnalysisProfile | None:
    """A profile by id if the user may see it; None otherwise (the API answers 404, never 403)."""
    try:
        return profiles_visible_to(user).select_related("owner").get(id=int(profile_id))
    except (AnalysisProfile.DoesNotExist, ValueError, TypeError, OverflowError):
        return None


def profile_lookup(*, user, ref: str | int) -> AnalysisProfile | None:
    """A visible profile by id (digits) or by name.

    By name, the user's own profile wins over a built-in of the same name, so
    a user can shadow `meeting-notes` with a version of their own. Names are
    never all digits (the profile serializer refuses them), so "42" can only
    mean an id.
    """
    ref = str(ref).strip()
    if not ref:
        return None
    if ref.isdigit():
        return profile_for_user(user=user, profile_id=ref)
    own = AnalysisProfile.objects.filter(owner=user, name=ref).first()
    if own is not None:
        return own
    return AnalysisProfile.objects.filter(owner__isnull=True, name=ref).first()


# --- the model listing (GET /api/v1/models) ------------------------------------------------------


@functools.cache
def _catalogue_rows() -> tuple[tuple[dict, ...], ...]:
    """Every catalogue model as its JSON-ready dict, built once per process (the catalogue never changes while
    a process runs), with the lower-case strings a search looks in."""
    rows = []
    for info in list_models():
        row = info.as_dict()
        haystack = " ".join((info.name, *info.aliases, info.display_name)).lower()
        rows.append((row, haystack, info.retires_on))
    return tuple(rows)


def model_listing(*, provider: str | None = None, search: str = "", include_retired: bool = False) -> list[dict]:
    """Usable models (the catalogue's, then each configured endpoint's) from memory, each with its health from the
    store every worker shares (one round trip to Redis)."""
    models = _listed_models(provider=provider, search=search, include_retired=include_retired)
    health = models_health()
    for row in models:
        row["health"] = health_row(health.get((row["provider"], row["name"])))
    return models


def models_health() -> dict[tuple[str, str], ModelHealth]:
    """The provider health of every model with something on record (analysis/engine/health.py), by (provider,
    model). Raises RedisError when Redis does not answer (the API answers 503)."""
    with closing(redis_connection()) as connection:
        return provider_health(connection).snapshot()


def health_row(health: ModelHealth | None) -> dict:
    """A model's `health` as GET /api/v1/models shows it (ModelHealthSerializer)."""
    if health is None:
        return {"state": OK, "since": None, "failures": 0, "last_error_kind": None, "last_error_at": None,
                "next_probe_at": None}
    return {"state": health.state, "since": _utc(health.since), "failures": health.failures,
            "last_error_kind": health.last_error_kind or None, "last_error_at": _utc(health.last_error_at),
            "next_probe_at": _utc(health.open_until)}


def _utc(timestamp: float | None) -> dt.datetime | None:
    return None if timestamp is None else dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _listed_models(*, provider: str | None, search: str, include_retired: bool) -> list[dict]:
    today = utc_today()
    configured = {name: provider_configured(name) for name in PROVIDER_NAMES}
    models = []
    for row, haystack, retires_on in _catalogue_rows():
        if provider is not None and row["provider"] != provider:
            continue
        if search and search not in haystack:
            continue
        if not include_retired and retires_on is not None and today > retires_on:
            continue
        models.append({**row, "configured": configured[row["provider"]]})
    for name, endpoint in endpoints().items():
        if provider is not None and provider != name:
            continue
        for model in sorted(endpoint.models) or ["*"]:
            if search and search not in model.lower():
                continue
            info = endpoint.model_info(model)
            models.append({**info.as_dict(), "configured": True, "endpoint": True})
    return models
