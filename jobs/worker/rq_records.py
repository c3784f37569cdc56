"""What RQ's own tools read about a ScriptRipperWorker, kept true while it runs many jobs at once:
an execution record for each running job, the worker's state and slots, the heartbeats, and RQ's
stop commands addressed to the job they name. A mixin of ScriptRipperWorker (jobs/worker/workers.py)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis.exceptions
from django.conf import settings
from rq.command import parse_payload
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

from jobs.worker.rq_private import RQWorkerPrivates, rq_job_record_success
from jobs.worker.runs import STOP_CANCELED, JobSlot, RunEnd

logger = logging.getLogger(__name__)

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass(eq=False)
class RunningJob:
    """A slot and the RQ records of its delivery."""

    slot: JobSlot
    rq_job: RQJob
    queue: Queue
    execution: Execution | None = None  # RQ's record of this run, once written (by the slot's thread)
    thread: threading.Thread | None = None


class RQRecordsMixin(RQWorkerPrivates):
    """RQ's records of the jobs a worker runs in its slots (`self.running`, under `self._running_lock`)."""

    def _prepare_rq_execution(self, rq_job: RQJob, queue: Queue, *, from_intermediate: bool) -> Execution:
        """RQ's records of a job starting, in one round trip: what its forking Worker writes in two
        (prepare_execution in the parent, prepare_job_execution in the horse)."""
        with self.connection.pipeline() as pipeline:
            ttl = self.get_heartbeat_ttl(rq_job)
            execution = Execution.create(rq_job, ttl, pipeline=pipeline, worker_name=self.name)
            self.executions[execution.id] = execution  # as RQ keeps it (its cleanup_execution pops it)
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(ttl, pipeline=pipeline)
            rq_job.heartbeat(now(), ttl, pipeline=pipeline)
            rq_job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(rq_job.key)
            if from_intermediate:
                pipeline.lrem(queue.intermediate_queue_key, 1, rq_job.id)
            pipeline.execute()
        return execution

    def _close_rq_execution(self, running: RunningJob, end: RunEnd) -> None:
        rq_job = running.rq_job
        if running.execution is None:
            return  # never written (Redis was unreachable): nothing of this run to close
        try:
            if rq_job.get_status(refresh=True) != JobStatus.STARTED:
                # Already re-enqueued under the same id (the reconciler, a retry): only close ours.
                with self.connection.pipeline() as pipeline:
                    self.cleanup_execution(rq_job, pipeline=pipeline, execution=running.execution)
                    pipeline.execute()
                return
            rq_job.ended_at = now()
            self._record_rq_success(rq_job, running.execution, return_value=end.value)
        except REDIS_ERRORS as exc:
            logger.warning("job %s: RQ records not updated (Redis unreachable: %s)", rq_job.id, exc)

    def _record_rq_success(self, rq_job: RQJob, execution: Execution, *, return_value: str) -> None:
        """RQ's records of a run that ended, in one round trip: what its handle_job_success writes
        (counts, result, finished registry, execution cleanup) without what these jobs never have.
        The project enqueues them itself (jobs.services.job_enqueue) with no dependents, repeats,
        callbacks, RQ webhooks or RQ rate limits, so RQ's WATCH of the dependents (two round trips
        more, and its extra heartbeat) guards nothing here."""
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(rq_job.ended_at - rq_job.started_at, pipeline)
            result_ttl = rq_job.get_result_ttl(self.default_result_ttl)
            rq_job_record_success(rq_job, return_value=return_value, result_ttl=result_ttl, pipeline=pipeline,
                                  worker_name=self.name, execution=execution)
            rq_job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            self.cleanup_execution(rq_job, pipeline=pipeline, execution=execution)
            pipeline.execute()

    def _set_state_safely(self, state: str) -> None:
        try:
            self.set_state(state)
        except REDIS_ERRORS:
            pass

    def _publish_slots(self, pipeline=None) -> None:
        with self._running_lock:
            busy = len(self.running)
        # Suspended (`rq suspend`) stays what RQ's tools show until `rq resume`, whatever the heartbeat finds.
        state = WorkerStatus.SUSPENDED if self._was_suspended else WorkerStatus.BUSY if busy else WorkerStatus.IDLE
        (pipeline or self.connection).hset(self.key, mapping={
            "state": state, "slots": self.concurrency, "slots_busy": busy})

    def _heartbeat_rq(self) -> None:
        """The worker's and every running job's RQ heartbeats in one round trip (from the monitor loop)."""
        with self._running_lock:
            running = list(self.running.values())
        ttl = int(max(settings.JOB_HEARTBEAT_SECONDS * 4, 60))
        try:
            with self.connection.pipeline() as pipeline:
                self.heartbeat(self.worker_ttl + 60, pipeline=pipeline)
                self._publish_slots(pipeline)
                for item in running:
                    if item.execution is not None:
                        item.execution.heartbeat(item.rq_job.started_job_registry, ttl, pipeline=pipeline)
                pipeline.execute()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()  # RQ's registry cleaning, every maintenance_interval
        except REDIS_ERRORS as exc:
            logger.warning("worker %s: RQ heartbeat failed (%s)", self.name, type(exc).__name__)

    def get_current_job_id(self) -> str | None:
        with self._running_lock:
            return next(iter(self.running), None)

    def handle_payload(self, message) -> None:
        """RQ's stop commands name a job (stop-job) or an execution (stop-execution): stop that run,
        not "the worker's current job"; the other commands go to RQ."""
        payload = parse_payload(message)
        if payload.get("command") in ("stop-job", "stop-execution"):
            with self._running_lock:
                running = self.running.get(payload.get("job_id") or "")
            if running is not None:
                running.slot.stop.stop(STOP_CANCELED)
            return
        super().handle_payload(message)
