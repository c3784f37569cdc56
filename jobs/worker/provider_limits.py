"""The provider limits and the provider health every worker shares through Redis (analysis.engine.limits,
analysis.engine.health), as this process builds them from settings."""

from __future__ import annotations

import functools

from django.conf import settings

from analysis.analyze import provider_health
from analysis.clients import endpoints
from analysis.engine.health import RedisProviderHealth
from analysis.engine.limits import ProviderLimiter
from analysis.engine.openai_compatible import in_flight_limits
from jobs.queues import rq_connection


def provider_limiter(*, holder: str = "") -> ProviderLimiter:
    """The limits shared by every worker through Redis: per provider, and each named endpoint its own.
    One per process, configuration and holder (every job of a worker shares it; it holds no per-job state).
    `holder`: the worker whose leases these are, released at once when it is found dead (jobs_reconcile)."""
    # A flex request may take FLEX_REQUEST_TIMEOUT: its lease must outlive it.
    return _limiter(rq_connection(), settings.PROVIDER_MAX_IN_FLIGHT, settings.PROVIDER_MAX_PER_MINUTE,
                    max(settings.PROVIDER_REQUEST_TIMEOUT, settings.FLEX_REQUEST_TIMEOUT) + 30,
                    tuple(sorted(in_flight_limits(endpoints()).items())), holder)


@functools.lru_cache(maxsize=8)
def _limiter(connection, max_in_flight: int, per_minute: int, lease_seconds: float,
             limits: tuple[tuple[str, int], ...], holder: str) -> ProviderLimiter:
    return ProviderLimiter(connection, max_in_flight=max_in_flight, per_minute=per_minute,
                           lease_seconds=lease_seconds, limits=dict(limits), holder=holder)


def worker_provider_health() -> RedisProviderHealth:
    """The provider health every worker and API process shares through Redis (analysis/engine/health.py), on the
    worker's Redis client; one per process and client (it holds no state of its own)."""
    return _health(rq_connection())


@functools.lru_cache(maxsize=8)
def _health(connection) -> RedisProviderHealth:
    return provider_health(connection)
