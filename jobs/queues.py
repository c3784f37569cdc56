"""One Redis client per process for the RQ queues.

django_rq.get_queue() / get_connection() build a new client (a new connection pool,
so a new TCP connection and handshake) on every call; on the submit path that
was most of a request's time. Clients are kept per URL so that a changed
setting (tests pointing RQ_QUEUES elsewhere) gets its own client. redis-py
pools are thread-safe and reset themselves in a forked child.
"""

from __future__ import annotations

import threading

import django_rq
from django.conf import settings
from redis import Redis
from rq.queue import Queue

_clients: dict[str, Redis] = {}
_lock = threading.Lock()


def rq_connection(queue_name: str = "default") -> Redis:
    url = settings.RQ_QUEUES[queue_name]["URL"]
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = django_rq.get_connection(queue_name)
    return client


def rq_queue(name: str) -> Queue:
    return django_rq.get_queue(name, connection=rq_connection(name))
