"""What a worker process needs from the operating system for the jobs it is configured to hold, checked when it
starts: a worker that would run out of file descriptors under load refuses to start, saying what it needs,
rather than failing calls one by one once it is busy."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

# Descriptors besides the sockets counted below: the interpreter, logs, the SDKs' certificate stores, Redis
# (RQ's connection, the limiter, the locks), the monitor and the background passes.
BASE_DESCRIPTORS = 128


@dataclass(frozen=True)
class Capacity:
    call_threads: int  # provider requests in flight at once: one socket each
    provider_pools: int  # providers and endpoints configured: each client keeps its own idle connections
    connections_per_pool: int
    db_connections: int

    @property
    def descriptors(self) -> int:
        # Every pool may hold its whole size idle while the call threads have the same number in use elsewhere.
        sockets = max(self.call_threads, self.provider_pools * self.connections_per_pool)
        return BASE_DESCRIPTORS + sockets + self.db_connections


def ensure_descriptors(capacity: Capacity) -> int:
    """Raise this process's soft limit on open files to what `capacity` needs when the hard limit allows it;
    ImproperlyConfigured naming the `ulimit -n` to set otherwise. Returns the soft limit in force."""
    needed = capacity.descriptors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return needed
    raise ImproperlyConfigured(
        f"This worker needs up to {needed} open files (WORKER_CALL_THREADS={capacity.call_threads}, "
        f"{capacity.provider_pools} provider client(s) of {capacity.connections_per_pool} connections, "
        f"WORKER_DB_CONNECTIONS={capacity.db_connections}) but the limit is {soft} (hard {hard}): raise it "
        f"(`ulimit -n {needed}`, LimitNOFILE= in a systemd unit, minfds in Supervisor) or lower WORKER_CALL_THREADS.")
