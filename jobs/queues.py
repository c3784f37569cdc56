"""One Redis client per process for the RQ queues.

django_rq.get_queue() / get_connection() build a new client (a new connection pool,
so a new TCP connection and handshake) on every call; on the submit path that
was most of a request's time. Clients are kept per connection (REDIS_URL, or the
Sentinels: scriptripper/redis_clients.py) so that a changed setting (tests pointing
RQ_QUEUES elsewhere) gets its own client. redis-py pools are thread-safe and reset
themselves in a forked child; through Sentinels, a pool's next connection after a
failover goes to the new primary.
"""

from __future__ import annotations

import threading

import django_rq
import redis
from django.conf import settings
from redis import Redis
from redis.driver_info import DriverInfo
from rq.queue import Queue
from rq.utils import as_text, parse_composite_key

from scriptripper.redis_clients import connection_key, redis_client

_clients: dict[str, Redis] = {}
_lock = threading.Lock()


def with_known_driver_version(client: Redis) -> Redis:
    """Tell the client's pool the redis-py version it reports on connect (CLIENT SETINFO).

    Left to itself, redis-py 8 looks its own version up in the package metadata for every
    new connection (importlib.metadata parses the whole METADATA file). A work horse starts
    with an empty pool after each fork, so that was paid on every job.
    """
    client.connection_pool.connection_kwargs["driver_info"] = DriverInfo(lib_version=redis.__version__)
    return client


def rq_connection(queue_name: str = "default") -> Redis:
    config = settings.RQ_QUEUES[queue_name]
    key = connection_key(config)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = with_known_driver_version(redis_client(config))
    return client


def use_as_rq_connection(client: Redis, queue_name: str = "default") -> None:
    """Make `client` (a worker's own) this process's client for the queues' URL, so that a
    work horse shares one pool, and so one new connection, between RQ and the job's own
    Redis calls (rate-limit slots), instead of opening a second one."""
    with _lock:
        _clients[connection_key(settings.RQ_QUEUES[queue_name])] = with_known_driver_version(client)


def rq_queue(name: str) -> Queue:
    return django_rq.get_queue(name, connection=rq_connection(name))


def started_registry_entries(queue: Queue, connection: Redis | None = None) -> list[tuple[str, bytes]]:
    """(job id, raw entry) of every entry of the queue's started registry: RQ 3 keys it by execution,
    "{job_id}:{execution_id}", parsed here by RQ's own parser and nowhere else."""
    connection = connection or queue.connection
    return [(parse_composite_key(as_text(entry))[0], entry)
            for entry in connection.zrange(queue.started_job_registry.key, 0, -1)]
