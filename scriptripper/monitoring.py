"""The Redis client of the reads an operator or a client makes to see how things stand (/healthz, /metrics, the
queues, the admin's charts, the models' health): short socket timeouts, so that they answer quickly when Redis is
down, which is exactly when someone looks at them (redis-py's default is no timeout at all)."""

from __future__ import annotations

from django.conf import settings
from redis import Redis


def redis_connection(*, timeout: float | None = None) -> Redis:
    """A Redis client on REDIS_URL with short socket timeouts (HEALTHZ_TIMEOUT_SECONDS); close it after use."""
    timeout = settings.HEALTHZ_TIMEOUT_SECONDS if timeout is None else timeout
    return Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
