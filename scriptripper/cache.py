"""Django's Redis cache through Redis Sentinel (CACHES when REDIS_SENTINELS is set).

Django's RedisCache builds its connection pools from URLs and knows no Sentinel; this backend is the same
cache with a client whose one pool is a SentinelConnectionPool on the current primary
(scriptripper/redis_clients.py). Reads go to the primary too, not to a replica: the throttles' counters
(accounts/throttling.py) must read what they just incremented.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from scriptripper.redis_clients import redis_client


class SentinelRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, *, connection: dict[str, Any], **options: Any) -> None:
        super().__init__(servers, **options)
        self._connection = connection

    def _get_connection_pool(self, write):
        if 0 not in self._pools:
            self._pools[0] = redis_client(self._connection, **self._pool_options).connection_pool
        return self._pools[0]


class SentinelRedisCache(RedisCache):
    """LOCATION names the Sentinels (for reading); OPTIONS["connection"] is the connection in django-rq's keys,
    and its other OPTIONS go to redis-py, as with Django's RedisCache."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = SentinelRedisCacheClient
