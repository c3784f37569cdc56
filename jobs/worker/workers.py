"""The RQ worker classes of `python manage.py rqworker high default low`.

`ScriptRipperWorker` (the default, settings.RQ["WORKER_CLASS"]) holds up to
WORKER_CONCURRENCY jobs in flight in one process: an analysis job is almost all waiting on
provider calls, so a process per job (RQ's forking Worker) spends hundreds of MiB on
waiting. Each job runs in a slot thread of its own; every provider call of every job goes
through one call pool, every ORM statement through one database pool
(WORKER_DB_CONNECTIONS connections), and one monitor loop keeps the leases, reads the
cancel flags and enforces the timeouts, all without signals (jobs/worker/runs.py).

RQ's own records stay truthful: each running job has its own RQ execution (refreshed by the
monitor), the worker is `busy` while any slot runs, and RQ's stop-job command reaches the
job it names.

`ForkingWorker` is RQ's one-job-per-process worker with the same durable settling: choose it with
`--worker-class jobs.worker.ForkingWorker` for jobs that could hang in C code holding the
GIL, which only a separate process can contain.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time

from django.conf import settings
from django.db import connections
from rq.exceptions import DequeueTimeout
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.queue import Queue
from rq.suspension import is_suspended
from rq.utils import now
from rq.worker import SimpleWorker, Worker, WorkerStatus

from analysis.analyze import preload_provider_modules
from analysis.clients import configured_provider_names, provider_connections, warm_provider_clients
from analysis.engine.execution import CallPool
from jobs.queues import use_as_rq_connection
from jobs.worker.capacity import Capacity, ensure_descriptors
from jobs.worker.dbpool import DatabasePool, db_retry, forget_connection, forget_connections
from jobs.worker.entry import shut_down_horse_runs
from jobs.worker.provider_batch_poller import BatchPollerThread
from jobs.worker.reconcile import ReconcilerThread
from jobs.worker.rq_records import REDIS_ERRORS, RQRecordsMixin, RunningJob
from jobs.worker.runs import SETTLED_ENDS, JobSlot, RunEnd, SlotMonitor, job_run, run_hand_over, run_settle

logger = logging.getLogger(__name__)

# While Redis is unreachable, the worker tries again after a wait that doubles from the first up to the last: a
# Sentinel failover ends within seconds, and the take must follow it then, not a minute later; a try costs one
# refused connection, or one question to the Sentinels. The error is logged once, then every REDIS_LOG_EVERY_S.
REDIS_RETRY_WAITS_S = (0.1, 0.5)
REDIS_LOG_EVERY_S = 30.0

# Once a take has found work, the jobs already waiting are taken this many at a time, each batch in two round
# trips (the ids, then their hashes): a backlog of a thousand starts at the pace of its batches' round trips,
# not of two per job, while other workers on the same queues still get their share of it.
TAKE_BATCH = 32

# Up to ARGV[1] job ids, from the first of KEYS that has any, then the next: the order a BLPOP over the same
# keys serves, so every job taken is the highest-priority one waiting when it is taken. ARGV[2] = "move": one
# queue, its ids moved to its intermediate list (the last key) as RQ's one-queue dequeue does; else popped,
# as RQ's several-queue dequeue does.
TAKE_WAITING_SCRIPT = """
local left = tonumber(ARGV[1])
local move = ARGV[2] == 'move'
local sources = move and 1 or #KEYS
local taken = {}
for i = 1, sources do
  while left > 0 do
    local id
    if move then id = redis.call('LMOVE', KEYS[i], KEYS[2], 'LEFT', 'RIGHT') else id = redis.call('LPOP', KEYS[i]) end
    if not id then break end
    taken[#taken + 1] = KEYS[i]
    taken[#taken + 1] = id
    left = left - 1
  end
end
return taken
"""


class RedisRetry:
    """The waits and log lines of one stretch of Redis being unreachable, for a loop that tries again."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.wait = REDIS_RETRY_WAITS_S[0]
        self.since: float | None = None
        self._logged_at = float("-inf")

    def failed(self, exc: Exception) -> float:
        """Record a failed try; the seconds to wait before the next."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self._logged_at >= REDIS_LOG_EVERY_S:
            logger.error("%s: Redis unreachable for %.0f s (%s); trying again every %g s at most", self.what,
                         now - self.since, exc, REDIS_RETRY_WAITS_S[1])
            self._logged_at = now
        wait, self.wait = self.wait, min(self.wait * 2, REDIS_RETRY_WAITS_S[1])
        return wait

    def succeeded(self) -> None:
        if self.since is not None:
            logger.info("%s: Redis reachable again after %.1f s", self.what, time.monotonic() - self.since)
        self.__init__(self.what)


def worker_capacity() -> Capacity:
    return Capacity(call_threads=settings.WORKER_CALL_THREADS, provider_pools=len(configured_provider_names()),
                    connections_per_pool=provider_connections(), db_connections=settings.WORKER_DB_CONNECTIONS)


def process_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class ScriptRipperWorker(RQRecordsMixin, SimpleWorker):
    """Many jobs in flight in one process; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.concurrency = settings.WORKER_CONCURRENCY
        self.high_reserved = min(settings.WORKER_HIGH_RESERVED_SLOTS, self.concurrency - 1)
        self.running: dict[str, RunningJob] = {}
        self._running_lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._taken = 0
        self._next_rq_beat = 0.0
        self._shutdown_at: float | None = None  # monotonic time of the warm shutdown request
        self._was_suspended = False  # `rq suspend` seen at the last read
        self._suspension_checked_at = float("-inf")
        self.db: DatabasePool | None = None
        self.calls: CallPool | None = None

    @property
    def connection_timeout(self) -> int:
        """The socket timeout RQ gives the worker's Redis connection. RQ sizes it for its own blocking dequeue
        (worker_ttl - 15 s: minutes); this worker's dequeue blocks for a second at most, so a read
        unanswered for this long is a primary that vanished without closing its connections (a host lost, a
        network cut, a frozen process): the worker gives up on it and, through Sentinels, finds the new one."""
        return 10

    # --- the loop ---------------------------------------------------------------------------
    def work(self, burst: bool = False, logging_level: str | None = None, date_format: str | None = None,
             log_format: str | None = None, max_jobs: int | None = None, max_idle_time: int | None = None,
             with_scheduler: bool = False, **_kwargs) -> bool:
        use_as_rq_connection(self.connection)
        # The SDK imports and token encodings (seconds) before the worker says it is listening.
        preload_provider_modules()
        self.db = DatabasePool(settings.WORKER_DB_CONNECTIONS)
        ensure_descriptors(worker_capacity())
        self.calls = CallPool(settings.WORKER_CALL_THREADS)
        # rqworker passes INFO unless -v says otherwise; RQ would then log three lines a job whatever
        # LOG_LEVEL asks (its bootstrap sets the level of its loggers): an explicit -v still wins.
        self._bootstrap(settings.LOG_LEVEL if logging_level in (None, "INFO") else logging_level, date_format,
                        log_format)
        self._publish_slots()
        # What start-up built (Django, the SDKs with their types, the token encodings) lives as long as the
        # process: frozen out of the collector's reach, a full collection while a thousand jobs run walks
        # only what the jobs made, not that too.
        gc.freeze()
        monitor = SlotMonitor(db=self.db, slots=self.slots, on_tick=self._maintain_rq).start()
        reconciler = ReconcilerThread(worker_name=self.name, db=self.db)
        reconciler.start()
        batch_poller = BatchPollerThread(worker_name=self.name)  # batch mode: never in a slot
        batch_poller.start()
        self.install_rq_signal_handlers()
        limit = min(filter(None, (max_jobs, settings.WORKER_MAX_JOBS)), default=None)
        idle_since = time.monotonic()
        try:
            while True:
                if self.stop_requested:
                    break
                if limit is not None and self._taken >= limit:
                    logger.info("worker %s: took %d jobs (WORKER_MAX_JOBS / --max-jobs), recycling", self.name, limit)
                    self._request_warm_shutdown()
                    break
                if self._suspended():
                    if burst:
                        logger.info("worker %s: suspended in burst mode, exiting", self.name)
                        break
                    time.sleep(0.2)
                    continue
                queues, room = self._queues_with_room()
                if limit is not None:
                    room = min(room, limit - self._taken)
                if not queues:
                    self._wait_for_a_free_slot()
                    continue
                if self._take(queues, room=room, block=not burst):
                    idle_since = time.monotonic()
                    continue
                if burst:
                    if not self.running:
                        break
                    self._wait_for_a_free_slot()  # a job ending may hand one back to the queue
                    continue
                if max_idle_time is not None and not self.running and time.monotonic() - idle_since >= max_idle_time:
                    break
        finally:
            batch_poller.stop()
            self._drain_and_exit(monitor, reconciler)
        return self._taken > 0

    def _bootstrap(self, logging_level: str, date_format: str | None, log_format: str | None) -> None:
        """RQ's bootstrap (register, subscribe to commands), waiting out a Redis that is not there yet."""
        retry = RedisRetry(f"worker {self.name} starting")
        while True:
            try:
                kwargs = {k: v for k, v in (("date_format", date_format), ("log_format", log_format)) if v}
                self.bootstrap(logging_level, **kwargs)
                retry.succeeded()
                return
            except REDIS_ERRORS as exc:
                time.sleep(retry.failed(exc))

    def _suspended(self) -> bool:
        """`rq suspend`: take nothing new until `rq resume` (the jobs in flight go on), and say so in
        the worker's state, as RQ's own worker does."""
        # Read at most once a second while taking (not at every take), every 0.2 s while suspended.
        if time.monotonic() < self._suspension_checked_at + (0.2 if self._was_suspended else 1.0):
            return self._was_suspended
        try:
            suspended = bool(is_suspended(self.connection))
            self._suspension_checked_at = time.monotonic()
            if suspended != self._was_suspended:
                logger.info("worker %s: %s", self.name, "suspended (`rq resume`)" if suspended else "resumed")
                self.set_state(WorkerStatus.SUSPENDED if suspended else
                               WorkerStatus.BUSY if self.running else WorkerStatus.IDLE)
                self._was_suspended = suspended
            return suspended
        except REDIS_ERRORS:
            return False  # the take waits the outage out

    def slots(self) -> list[JobSlot]:
        with self._running_lock:
            return [running.slot for running in self.running.values()]

    def _queues_with_room(self) -> tuple[list[Queue], int]:
        """The queues a free slot may take from, in priority order, and how many jobs may be taken from them:
        none when every slot is busy; only `high` when the free slots are the ones reserved for it."""
        with self._running_lock:
            busy = len(self.running)
            busy_not_high = sum(1 for running in self.running.values() if running.queue.name != "high")
        free, free_not_high = self.concurrency - busy, self.concurrency - self.high_reserved - busy_not_high
        if free <= 0:
            return [], 0
        if free_not_high <= 0:
            return [queue for queue in self.ordered_queues if queue.name == "high"], free
        # Taken together, the jobs may all be from the other queues: as many as those may still have.
        return self.ordered_queues, min(free, free_not_high)

    def _wait_for_a_free_slot(self) -> None:
        self._slot_freed.wait(1.0)
        self._slot_freed.clear()

    def _take(self, queues: list[Queue], *, room: int, block: bool) -> bool:
        """Dequeue one job (in the order of `queues`) and start it in a slot, then up to `room` - 1 more that are
        already waiting (_take_waiting). Redis unreachable is waited out (RedisRetry), never fatal: the jobs in
        flight go on meanwhile."""
        retry = RedisRetry(f"worker {self.name}")
        # A short block: a slot freeing, a shutdown or the reserved slots' rule is seen within 1 s; 0.1 s while
        # only `high` may be taken (the free slots are its reserved ones): a slot freed for the rest is used at once.
        timeout = (1 if len(queues) == len(self.ordered_queues) else 0.1) if block else None
        while not self.stop_requested:
            try:
                result = self.queue_class.dequeue_any(queues, timeout, connection=self.connection,
                                                      job_class=self.job_class, serializer=self.serializer)
                retry.succeeded()
                if result is None:
                    return False
                rq_job, queue = result
                # A one-queue dequeue moves the id to RQ's intermediate list (BLMOVE); several pop it.
                self._start(rq_job, queue, from_intermediate=len(queues) == 1)
                if room > 1:
                    self._take_waiting(queues, min(room - 1, TAKE_BATCH))
                return True
            except DequeueTimeout:
                retry.succeeded()
                return False
            except REDIS_ERRORS as exc:
                self._pause(retry.failed(exc))
        return False

    def _take_waiting(self, queues: list[Queue], count: int) -> None:
        """Start up to `count` jobs already waiting on `queues`, in priority order, without blocking: their ids in
        one script, their hashes in one pipeline (a job whose hash is gone is passed over, as RQ's dequeue
        does). A Redis error is left to the next take: ids popped but not started are then lost to Redis only,
        and PostgreSQL's reconciler enqueues their jobs again, as after a lost reply to RQ's own LPOP."""
        single = len(queues) == 1
        keys = [queues[0].key, queues[0].intermediate_queue_key] if single else [queue.key for queue in queues]
        try:
            taken = self.connection.eval(TAKE_WAITING_SCRIPT, len(keys), *keys, count, "move" if single else "pop")
            if not taken:
                return
            pairs = list(zip(taken[::2], taken[1::2]))
            rq_jobs = self.job_class.fetch_many([job_id.decode() for _, job_id in pairs], connection=self.connection,
                                                serializer=self.serializer)
        except REDIS_ERRORS as exc:
            logger.warning("worker %s: taking the waiting jobs failed (%s); the next take tries again", self.name, exc)
            return
        by_key = {queue.key.encode(): queue for queue in queues}
        for (key, _), rq_job in zip(pairs, rq_jobs):
            if rq_job is not None:
                self._start(rq_job, by_key[key], from_intermediate=single)

    def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or until a shutdown is asked for (slots freeing meanwhile do not end the wait)."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _start(self, rq_job: RQJob, queue: Queue, *, from_intermediate: bool) -> None:
        slot = JobSlot(job_id=rq_job.id, worker=self.name, db=self.db, calls=self.calls,
                       timeout=float(rq_job.timeout or settings.JOB_TIMEOUT))
        running = RunningJob(slot=slot, rq_job=rq_job, queue=queue)
        # RQ's start records are written by the slot's thread: the take loop (one thread for all the
        # slots) is left with the dequeue alone.
        running.thread = threading.Thread(target=self._run_slot, args=(running, from_intermediate),
                                          name=f"job-{rq_job.id}", daemon=True)
        with self._running_lock:
            self.running[rq_job.id] = running
        self._taken += 1
        if self._shutdown_at is not None:
            slot.shut_down(0)
        running.thread.start()

    def _run_slot(self, running: RunningJob, from_intermediate: bool) -> None:
        slot = running.slot
        end: RunEnd | None = None
        try:
            running.execution = self._prepare_rq_execution(running.rq_job, running.queue,
                                                           from_intermediate=from_intermediate)
        except REDIS_ERRORS as exc:  # the job runs all the same: PostgreSQL holds what matters
            logger.warning("job %s: RQ records not written (Redis unreachable: %s)", slot.job_id, exc)
        try:
            end = job_run(slot)
        except Exception:
            logger.exception("job %s: its run raised", slot.job_id)
        try:
            if end is None:
                end = run_settle(job_id=slot.job_id, worker=self.name, reason="its run raised an unexpected error.",
                                 db=lambda fn: self.db.run(fn, deadline=time.monotonic() + 30))
            run_hand_over(end, job_id=slot.job_id, close_rq_record=lambda: self._close_rq_execution(running, end),
                          db=self.db.run)
        except Exception:
            logger.exception("job %s: could not settle; the reconciler will recover it", slot.job_id)
        finally:
            with self._running_lock:
                self.running.pop(slot.job_id, None)
                idle = not self.running
            self._slot_freed.set()
            if idle and not self.stop_requested and not self._was_suspended:
                self._set_state_safely(WorkerStatus.IDLE)

    def _maintain_rq(self) -> None:
        if time.monotonic() < self._next_rq_beat:
            return
        self._next_rq_beat = time.monotonic() + min(settings.JOB_HEARTBEAT_SECONDS, 5.0)
        self._heartbeat_rq()
        limit = settings.WORKER_MAX_MEMORY_MB
        if limit and self._shutdown_at is None and process_rss_mb() > limit:
            logger.warning("worker %s: RSS above WORKER_MAX_MEMORY_MB=%d, recycling", self.name,
                           settings.WORKER_MAX_MEMORY_MB)
            self._request_warm_shutdown()

    # --- commands and signals -------------------------------------------------------------
    def request_stop(self, signum, frame) -> None:
        """Warm shutdown (SIGTERM, SIGINT): take nothing new, hand back what is held; a second signal
        is a cold shutdown."""
        self.warm_shutdown_asked_at = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        logger.info("worker %s: warm shutdown requested", self.name)
        self._request_warm_shutdown()

    def _request_warm_shutdown(self) -> None:
        self.stop_requested = True
        if self._shutdown_at is None:
            self._shutdown_at = time.monotonic()
        for slot in self.slots():
            slot.shut_down(settings.WORKER_SHUTDOWN_GRACE_SECONDS)
        self._slot_freed.set()

    def request_force_stop(self, signum, frame) -> None:
        # A worker pool and the terminal may both deliver one Ctrl+C: a repeat within 1 s is the same.
        if self.warm_shutdown_asked_at and (now() - self.warm_shutdown_asked_at).total_seconds() < 1:
            return
        logger.warning("worker %s: cold shutdown", self.name)
        for slot in self.slots():
            slot.shut_down(0)
        self._slot_freed.set()

    def _drain_and_exit(self, monitor: SlotMonitor, reconciler) -> None:
        """Wait for the slots to end (each hands its job back after the grace at the latest), then
        close everything the worker opened."""
        if self.running:
            self._request_warm_shutdown()
        give_up = time.monotonic() + settings.WORKER_SHUTDOWN_GRACE_SECONDS + 30
        while self.running and time.monotonic() < give_up:
            self._slot_freed.wait(0.5)
            self._slot_freed.clear()
        reconciler.stop()
        monitor.stop()
        self.calls.shutdown(wait=False)
        self.db.shutdown()
        try:
            self.teardown()
        except REDIS_ERRORS as exc:
            logger.warning("worker %s: could not register its death (%s)", self.name, exc)


# --- the one-job-per-process worker ------------------------------------------------------------

class ForkingWorker(Worker):
    """One work horse per job (RQ's `Worker`), with the durable-jobs settling on top: the parent
    settles a job whatever way its horse ended, forwards a warm shutdown to the horse (which hands
    its job back after the calls in flight), and runs the reconciler."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The parent's heartbeat is what the reconciler reads to tell a live worker from a dead one.
        self.job_monitoring_interval = max(1, int(settings.JOB_LEASE_SECONDS // 3))

    def work(self, *args, **kwargs):
        use_as_rq_connection(self.connection)
        preload_provider_modules()
        warm_provider_clients()
        reconciler = ReconcilerThread(worker_name=self.name)
        reconciler.start()
        batch_poller = BatchPollerThread(worker_name=self.name)
        batch_poller.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            batch_poller.stop()
            reconciler.stop()

    def fork_work_horse(self, job, queue):
        forget_connections()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        # In the horse: never touch the parent's database socket; open a fresh one.
        for conn in connections.all(initialized_only=True):
            conn.connection = None
        signal.signal(signal.SIGUSR1, shut_down_horse_runs)
        super().main_work_horse(job, queue)

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        finally:
            # Also on a cold shutdown (SystemExit raised while waiting for the horse, which RQ has
            # killed by then): the job must not be left `started`.
            if not self._horse_left_row_final(job):
                self._settle(job.id)

    @staticmethod
    def _horse_left_row_final(job) -> bool:
        try:
            if job.get_status(refresh=True) != JobStatus.FINISHED:
                return False
            return job.return_value(refresh=True) in SETTLED_ENDS
        except Exception:  # Redis hiccup or a vanished job: settle the safe way
            return False

    def _settle(self, job_id: str) -> None:
        """The horse is gone (RQ has closed its records by now): settle its run in the parent."""
        def db(fn):
            return db_retry(fn, tries=5)

        try:
            end = run_settle(job_id=job_id, worker=self.name, reason="its work horse exited before finishing.", db=db)
            run_hand_over(end, job_id=job_id, close_rq_record=lambda: None, db=db)
        except Exception:
            logger.exception("could not settle job %s; the reconciler will recover it", job_id)
        finally:
            forget_connection()

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

