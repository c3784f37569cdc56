"""The Redis client of the reads an operator or a client makes to see how things stand (/healthz, /metrics, the
queues, the admin's charts, the models' health): short socket timeouts, so that they answer quickly when Redis is
down, which is exactly when someone looks at them (redis-py's default is no timeout at all)."""

from __future__ import annotations

from django.conf import settings
from redis import Redis

from scriptripper.redis_clients import configured_redis_connection, redis_client


def redis_connection(*, timeout: float | None = None) -> Redis:
    """A Redis client on the queues' Redis (REDIS_URL, or the primary the Sentinels name) with short socket timeouts
    (HEALTHZ_TIMEOUT_SECONDS); close it after use."""
    timeout = settings.HEALTHZ_TIMEOUT_SECONDS if timeout is None else timeout
    return redis_client(configured_redis_connection(), socket_timeout=timeout, socket_connect_timeout=timeout)
