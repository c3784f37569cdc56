"""System checks for misconfiguration that would otherwise surface as failed jobs."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from analysis.engine.catalogue import parse_context_overrides


@register()
def check_redis_url(app_configs, **kwargs):
    from urllib.parse import urlparse

    parsed = urlparse(settings.REDIS_URL)
    if parsed.scheme in ("redis", "rediss") and not parsed.hostname:
        return [Error(f"REDIS_URL {settings.REDIS_URL!r} has no host", id="scriptripper.E001")]
    return []


@register()
def check_context_overrides(app_configs, **kwargs):
    try:
        parse_context_overrides(settings.MODEL_CONTEXT_OVERRIDES_RAW)
    except ValueError as exc:
        return [Error(f"MODEL_CONTEXT_OVERRIDES: {exc}", id="scriptripper.E002")]
    return []
