"""The worker's database threads: how many jobs share a bounded number of PostgreSQL connections.

Django opens one connection per thread that touches the ORM. A worker holds up to
WORKER_CONCURRENCY jobs, each with task threads, so letting every thread query would open
hundreds of connections. Instead every ORM statement of the worker (its jobs' writes, the
heartbeats, the reconciler) runs on one of the WORKER_DB_CONNECTIONS threads of this pool:
the process never holds more connections than that, whatever the load, and each thread
keeps its connection open between statements (no connect per job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection, connections

from analysis.engine.execution import StopToken, WorkPool

logger = logging.getLogger(__name__)

T = TypeVar("T")

DB_ERRORS = (OperationalError, InterfaceError)


def forget_connection(conn=connection) -> None:
    """Close this thread's connection (or `conn`); one PostgreSQL already dropped is forgotten instead.

    psycopg cannot close a socket the server reset: the wrapper is emptied all the same, so
    the next statement opens a fresh connection.
    """
    try:
        conn.close()
    except Exception:  # the connection is already gone
        conn.connection = None


def forget_connections() -> None:
    """forget_connection for every connection this thread opened (before a fork: a connection shared by
    two processes is the cause of "SSL error" and "connection already closed" reports)."""
    for conn in connections.all(initialized_only=True):
        forget_connection(conn)


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before try `attempt + 1` of a statement whose connection dropped: doubling from 0.2 s,
    at most 5 s, so a PostgreSQL restart or failover is waited out without hammering it."""
    return min(0.2 * 2 ** (attempt - 1), 5.0)


def db_retry(fn: Callable[[], T], *, tries: int = 8, deadline: float | None = None,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Run a short DB operation in this thread, reconnecting on a dropped connection (PostgreSQL
    restarted, pg_terminate_backend, a failover) instead of losing the write.

    Without `deadline`, gives up after `tries`; with one (a time.monotonic() value), keeps
    trying until then: an answer already paid for waits out a 10-30 s failover instead of
    being dropped and asked again. Only for operations that are safe to repeat (conditional
    updates, idempotent ledger entries). Never inside an atomic block.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except DB_ERRORS as exc:
            forget_connection()
            delay = reconnect_delay(attempt)
            if (attempt >= tries if deadline is None else time.monotonic() + delay >= deadline):
                raise
            logger.warning("database connection lost (%s); reconnecting", str(exc).strip()[:120])
            sleep(delay)


class DatabasePool:
    """WORKER_DB_CONNECTIONS threads that run every ORM call of a worker process."""

    def __init__(self, size: int, *, name: str = "db") -> None:
        self.size = size
        self._pool = WorkPool(size, name=name, on_thread_exit=forget_connection)

    @property
    def busy(self) -> int:
        return self._pool.busy

    def run(self, fn: Callable[[], T], *, stop: StopToken | None = None, deadline: float | None = None,
            tries: int = 8) -> T:
        """fn() on a database thread, retried over dropped connections (see db_retry).

        `stop`: the caller stops waiting when its job is stopped (the statement, already queued,
        still runs: every write here is conditional on the attempt, so a late one changes nothing).
        """
        wait = stop.sleep if stop is not None else time.sleep

        def once() -> T:
            try:
                return fn()
            except DB_ERRORS:
                forget_connection()
                raise

        attempt = 0
        while True:
            attempt += 1
            future = self._pool.submit(once)
            try:
                return stop.result(future) if stop is not None else future.result()
            except DB_ERRORS as exc:
                delay = reconnect_delay(attempt)
                if (attempt >= tries if deadline is None else time.monotonic() + delay >= deadline):
                    raise
                logger.warning("database connection lost (%s); retrying in %.1f s", str(exc).strip()[:120], delay)
                wait(delay)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Finish what is queued, close every thread's connection."""
        self._pool.shutdown(wait=True, timeout=timeout)
