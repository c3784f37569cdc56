"""Every Redis client of the project, on REDIS_URL or through Redis Sentinel.

With REDIS_SENTINELS set, a client asks the Sentinels for the current primary of REDIS_SENTINEL_MASTER before
each new connection (redis-py's SentinelConnectionPool). After a failover, a connection still open to the old
primary fails (refused, reset, or READONLY once the old primary is back as a replica, which redis-py turns into
a ConnectionError and a disconnect), which every caller already treats as Redis being away for a moment, and
the next connection goes to the promoted replica.

The connection is described once, in django-rq's RQ_QUEUES keys (URL; or SENTINELS, MASTER_NAME, DB, PASSWORD,
SENTINEL_KWARGS, CONNECTION_KWARGS), so django-rq's own commands (rqworker, rqstats, rqsuspend) and dashboard
connect the way every other client here does: the queues (jobs/queues.py), the monitoring (jobs/monitoring.py),
the cache behind the throttles (scriptripper/cache.py) and RQ's command line (scriptripper/rq_cli.py).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from redis import Redis
from redis.sentinel import Sentinel

# A Sentinel answers discovery from memory: one that does not answer within this is skipped for the next, so a
# dead Sentinel host never holds a client up for longer (redis-py asks them in turn).
SENTINEL_SOCKET_TIMEOUT = 1.0
# Through Sentinels, a primary can vanish without closing its connections (a host lost, a network cut, a frozen
# process): a client that waited on it forever would never ask the Sentinels for the new one. Every command the
# project sends answers in milliseconds; blocking dequeues are bounded by their own timeout (RQ raises the
# socket timeout of a worker's connection above it: jobs/worker/workers.py).
PRIMARY_SOCKET_TIMEOUT = 5.0

# The keys of a connection in an RQ_QUEUES entry (the rest are the queue's: DEFAULT_TIMEOUT, ...).
CONNECTION_KEYS = ("URL", "SENTINELS", "MASTER_NAME", "DB", "PASSWORD", "SENTINEL_KWARGS", "CONNECTION_KWARGS")


def redis_connection_config(*, url: str, sentinels: list[tuple[str, int]], master: str, db: int, password: str,
                            sentinel_password: str, sentinel_tls: bool) -> dict[str, Any]:
    """The connection in django-rq's keys: REDIS_URL's, or the Sentinels' when there are any."""
    if not sentinels:
        return {"URL": url}
    tls = {"ssl": True} if sentinel_tls else {}
    return {
        "SENTINELS": [list(address) for address in sentinels],
        "MASTER_NAME": master,
        "DB": db,
        "PASSWORD": password or None,
        "SENTINEL_KWARGS": {"password": sentinel_password or None, "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
                            "socket_connect_timeout": SENTINEL_SOCKET_TIMEOUT, **tls},
        "CONNECTION_KWARGS": {"socket_timeout": PRIMARY_SOCKET_TIMEOUT,
                              "socket_connect_timeout": PRIMARY_SOCKET_TIMEOUT, **tls},
    }


def configured_redis_connection() -> dict[str, Any]:
    """The connection the settings name, read now (so a setting changed at run time, as tests do, applies)."""
    return redis_connection_config(
        url=settings.REDIS_URL, sentinels=settings.REDIS_SENTINELS, master=settings.REDIS_SENTINEL_MASTER,
        db=settings.REDIS_DB, password=settings.REDIS_PASSWORD, sentinel_password=settings.REDIS_SENTINEL_PASSWORD,
        sentinel_tls=settings.REDIS_SENTINEL_TLS)


def redis_client(config: dict[str, Any], **options: Any) -> Redis:
    """A client on the connection `config` describes (an RQ_QUEUES entry will do), with redis-py's `options`
    (socket timeouts, ...). Through Sentinels, the socket timeouts given also bound each Sentinel's answer."""
    if "SENTINELS" not in config:
        return Redis.from_url(config["URL"], **options)
    sentinel_kwargs = {**config["SENTINEL_KWARGS"],
                       **{key: value for key, value in options.items() if key.startswith("socket_")}}
    sentinel = Sentinel([tuple(address) for address in config["SENTINELS"]], sentinel_kwargs=sentinel_kwargs,
                        db=config["DB"], password=config["PASSWORD"], **config["CONNECTION_KWARGS"])
    return sentinel.master_for(config["MASTER_NAME"], **options)


def connection_key(config: dict[str, Any]) -> str:
    """One string per distinct connection (a cache key for the clients built on it)."""
    return json.dumps({key: config[key] for key in CONNECTION_KEYS if key in config}, sort_keys=True)


def redis_location(config: dict[str, Any]) -> str:
    """Where `config` points, for messages: never a password."""
    if "SENTINELS" not in config:
        parts = urlsplit(config["URL"])
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        return urlunsplit(parts)
    return (f"the primary {config['MASTER_NAME']!r} of the Sentinels {sentinel_addresses(config['SENTINELS'])}, "
            f"database {config['DB']}")


def sentinel_addresses(sentinels) -> str:
    """The Sentinels as REDIS_SENTINELS writes them: host:port,[v6 host]:port."""
    return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in sentinels)
