"""The passes a worker runs in the background (the reconciler, the batch poller): one thread each, a pass every
interval, in one worker at a time across the fleet."""

from __future__ import annotations

import logging
import random
import threading

from django.db import InterfaceError, OperationalError
from redis.exceptions import RedisError

from jobs.queues import rq_connection
from jobs.worker.dbpool import forget_connection


def pass_lock(redis, key: str, *, owner: str, ttl: float) -> bool:
    """One pass per interval across all workers: whoever sets the key runs; it expires by itself."""
    return bool(redis.set(key, owner, nx=True, px=max(int(ttl * 1000), 500)))


class PeriodicPass(threading.Thread):
    """A pass every `interval` seconds (jittered by 10 %), run by the worker that takes the Redis lock `lock_key`
    for the pass; its TTL is just under the interval, so a SIGKILLed holder blocks nobody. An error costs one
    pass, never the thread. On a database connection of its own, closed after every pass, unless
    `own_connection` is off (the pass runs in a pool that keeps its connections). Daemon: it never holds the
    worker up at exit.

    A subclass names its `label` (in its log lines) and `lock_key`, and gives `interval`, `first_delay` and
    `run_pass`; it logs on the logger of its own module."""

    label: str
    lock_key: str
    own_connection = True

    def __init__(self, *, name: str, worker_name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.worker_name = worker_name
        self.stopped = threading.Event()
        self.logger = logging.getLogger(type(self).__module__)  # the module of the pass: jobs.worker.reconcile, jobs.worker.provider_batch_poller

    def stop(self) -> None:
        """Stop after the pass in hand (joined: its worker closes the database pool next)."""
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=10)

    def interval(self) -> float:
        raise NotImplementedError

    def first_delay(self, interval: float) -> float:
        raise NotImplementedError

    def run_pass(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        interval = self.interval()
        delay = self.first_delay(interval)
        while not self.stopped.wait(delay):
            delay = interval * random.uniform(0.9, 1.1)
            try:
                if not pass_lock(rq_connection(), self.lock_key, owner=self.worker_name, ttl=interval * 0.9):
                    continue
                self.run_pass()
            except RedisError as exc:
                self.logger.warning("%s: Redis unreachable (%s)", self.label, type(exc).__name__)
            except (OperationalError, InterfaceError) as exc:
                self.logger.warning("%s: database unreachable (%s); next pass in %.0f s", self.label,
                                    str(exc).strip()[:120], delay)
            except Exception:
                self.logger.exception("%s pass failed", self.label)
            finally:
                if self.own_connection:
                    forget_connection()
