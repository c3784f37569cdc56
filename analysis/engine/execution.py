"""How one process runs the provider calls of many analyses at once: a stop token per run, one call pool.

Pure analysis: no Django, no jobs. The job worker (jobs/worker/workers.py) holds many jobs in one
process; each job gets a `StopToken` (cancel, timeout, shutdown) and every job's calls go
through the worker's one `CallPool`.

Why a call pool of single calls only: the tasks of a job and the chunks of a task nest
(a task waits for its map calls, then its reduce call). If waiting work ran on the same
bounded pool as the work it waits for, a pool full of waiting tasks would wait forever.
Only leaf work (one provider request) runs on the pool and nothing on it ever waits for
the pool, so it cannot deadlock however the work above it nests.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class Stopped(Exception):
    """The run was stopped (cancel, timeout, shutdown): start nothing more, wait for nothing more."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Shared by every Flag's set(): a flag is set once, so this lock is almost never contended.
_FLAG_SETTING = threading.Lock()


class Flag:
    """threading.Event's is_set, set and wait (never cleared), on one lock held until set: an Event builds a
    Condition around its lock (about 1.2 KiB against about 0.1), and a worker with a thousand jobs in flight
    keeps several of them per job. Every waiter wakes: each takes the released lock and gives it back."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with _FLAG_SETTING:
            if self._set:
                return
            self._set = True
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False when `timeout` seconds pass first."""
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            self._lock.release()
        return self._set


class StopToken:
    """Set once, from any thread; every wait of a run goes through it and ends when it is set.

    Waiting on a future registers an event that `stop()` sets, so a stopped run wakes at once
    without any thread polling.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = Flag()
        self._waiters: set[Flag] = set()
        self._children: set[StopToken] = set()
        self.reason = ""

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def stop(self, reason: str) -> bool:
        """Stop the run; False when it was stopped already (the first reason is kept)."""
        with self._lock:
            if self._event.is_set():
                return False
            self.reason = reason
            self._event.set()
            waiters = list(self._waiters)
            children = list(self._children)
        for waiter in waiters:
            waiter.set()
        for child in children:
            child.stop(reason)
        return True

    def child(self) -> StopToken:
        """A token stopped with this one, that can also be stopped alone (the calls of one task on one model,
        abandoned when the task moves to another model). Release it with `release` once it is done."""
        child = StopToken()
        with self._lock:
            if not self._event.is_set():
                self._children.add(child)
                return child
            reason = self.reason
        child.stop(reason)
        return child

    def release(self, child: StopToken) -> None:
        with self._lock:
            self._children.discard(child)

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped(self.reason)

    def sleep(self, seconds: float) -> None:
        """time.sleep that ends (raising Stopped) when the run is stopped."""
        if self._event.wait(max(seconds, 0.0)):
            raise Stopped(self.reason)

    def result(self, future: Future[T], timeout: float | None = None) -> T:
        """future.result(), unless the run is stopped first (Stopped; the future is abandoned).

        `timeout`: TimeoutError when the future has not finished by then (it goes on)."""
        waiter = Flag()
        with self._lock:
            if self._event.is_set():
                raise Stopped(self.reason)
            self._waiters.add(waiter)
        future.add_done_callback(lambda _future: waiter.set())
        try:
            finished = waiter.wait(timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        if self._event.is_set():
            raise Stopped(self.reason)
        if not finished:
            raise TimeoutError
        return future.result()


class WorkPool:
    """A fixed set of daemon threads running submitted callables, with a hook run in each thread
    as it exits (the database pool closes its thread's connection there).

    concurrent.futures.ThreadPoolExecutor gives no per-thread exit hook, and joins its threads
    at interpreter exit, which a thread stuck in a provider call would delay.
    """

    def __init__(self, size: int, *, name: str, on_thread_exit: Callable[[], None] | None = None) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._on_thread_exit = on_thread_exit
        self._lock = threading.Lock()
        self._busy = 0
        self._closed = False
        self._name = name
        self._threads: list[threading.Thread] = []

    def _grow(self) -> None:
        # Threads start as work needs them (a horse with one task starts one), up to `size`.
        if len(self._threads) < min(self.size, self._busy):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    @property
    def busy(self) -> int:
        """Callables running or waiting for a thread."""
        with self._lock:
            return self._busy

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            self._busy += 1
            self._grow()
        self._queue.put((fn, future))
        return future

    def _work(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                fn, future = item
                try:
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn())
                        except BaseException as exc:  # handed to whoever waits on the future
                            future.set_exception(exc)
                finally:
                    with self._lock:
                        self._busy -= 1
        finally:
            if self._on_thread_exit is not None:
                self._on_thread_exit()

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Let the threads finish what is queued, then end them. `timeout` bounds the wait."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                thread.join(timeout)


class CallPool(WorkPool):
    """The one pool for the provider requests of every run in the process.

    A request abandoned by a stopped run keeps its thread until the SDK returns, which its
    request timeout (PROVIDER_REQUEST_TIMEOUT) bounds; the caller releases its rate-limit
    slot in the same thread, when it returns.
    """

    def __init__(self, size: int, *, name: str = "provider-call") -> None:
        super().__init__(size, name=name)
