"""System checks for misconfiguration that would otherwise surface as failed jobs."""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import Error, Warning, register

from analysis.engine.catalogue import parse_context_overrides


@register()
def check_redis_url(app_configs, **kwargs):
    if settings.REDIS_SENTINELS:
        if len(settings.REDIS_SENTINELS) < 2:
            return [Warning(
                "REDIS_SENTINELS names one Sentinel: while it is down, no process can find the primary.",
                hint="Name every Sentinel (at least three run, so that a majority agrees on a failover).",
                id="scriptripper.W003")]
        return []
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


@register()
def check_database_pool_mode(app_configs, **kwargs):
    """The database settings against DATABASE_POOL_MODE, the PgBouncer pool mode they must suit (an OPTIONS value
    can come from DATABASE_URL's query string: ?prepare_threshold=5, ?options=...)."""
    mode = settings.DATABASE_POOL_MODE
    database = settings.DATABASES["default"]
    options = database.get("OPTIONS", {})
    warnings = []
    if mode == "transaction" and not database.get("DISABLE_SERVER_SIDE_CURSORS"):
        warnings.append(Warning(
            "DATABASE_POOL_MODE=transaction but DISABLE_SERVER_SIDE_CURSORS is off: a server-side cursor does not "
            "outlive its transaction's server connection, so a later fetch fails.",
            id="scriptripper.W004"))
    if mode == "transaction" and options.get("prepare_threshold") is not None:
        warnings.append(Warning(
            f"DATABASE_POOL_MODE=transaction but psycopg prepares statements (prepare_threshold="
            f"{options['prepare_threshold']}): PgBouncer before 1.21 cannot keep them across server connections.",
            hint="Remove prepare_threshold from DATABASE_URL / OPTIONS.", id="scriptripper.W005"))
    if mode != "none" and "-c" in str(options.get("options", "")).split():
        warnings.append(Warning(
            f"DATABASE_POOL_MODE={mode} but the connection sends startup options ({options['options']!r}): "
            "PgBouncer refuses them unless its ignore_startup_parameters lists `options`, and then drops them.",
            hint="Give the time zone and other server settings in PgBouncer's [databases] entry "
                 "(timezone=UTC), as README's pgbouncer.ini does.", id="scriptripper.W006"))
    return warnings
