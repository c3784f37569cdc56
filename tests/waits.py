"""A wait on another process (a worker, a server, a failover): a condition polled until it holds, never a sleep.
The tests import it from tests.conftest; tests/servers.py, which the benchmarks use too, from here."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """predicate()'s first true value, polled until `timeout` seconds: a wait on a condition, not a sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
