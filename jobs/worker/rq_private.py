"""Every private member of RQ the worker relies on, in this module only, each with why.

ScriptRipperWorker replaces RQ's `work()` loop (it holds many jobs in one process, where RQ's workers hold one)
and writes RQ's records of a run itself, in one round trip; RQ offers no public hook for the few pieces of its
state that such a loop must share with RQ's own methods. The pinned RQ (requirements/base.txt) has them all:
tests/jobs/test_rq_private_members.py fails, naming the member and the reason below, when an upgrade removes or
changes one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis.exceptions
from redis import Redis
from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.queue import Queue
from rq.worker import BaseWorker

# (the RQ class, the member) -> why the worker needs it. Instance attributes are set by RQ's constructors.
RQ_PRIVATE_MEMBERS: dict[tuple[type, str], str] = {
    (BaseWorker, "_set_ip_address"): "overridden: RQ asks Redis for the client's address while constructing "
                                     "the worker; a Redis that is not up yet must not stop it from starting",
    (BaseWorker, "_install_signal_handlers"): "RQ's SIGINT/SIGTERM handlers (warm, then cold shutdown), installed "
                                              "by the worker's own loop as RQ's loop does",
    (BaseWorker, "_stop_requested"): "the shutdown flag RQ's signal handlers and stop commands set; the worker's "
                                     "loop reads it as RQ's does",
    (BaseWorker, "_ordered_queues"): "the queues in priority order, as RQ keeps them (its dequeue strategies "
                                     "reorder this list)",
    (BaseWorker, "_shutdown_requested_date"): "when the warm shutdown was asked: RQ's request_force_stop reads "
                                              "it to ignore a second Ctrl+C within a second",
    (RQJob, "_result"): "the return value RQ's success records store (set before writing them, as RQ's own "
                        "execution does)",
    (RQJob, "_status"): "the status RQ's success records store, set as RQ's own execution does",
    (RQJob, "_handle_success"): "RQ's success records of one run (status, result, finished registry), written "
                                "in the worker's one pipeline",
}


class RQWorkerPrivates:
    """The worker state RQ keeps in private attributes, as properties of a worker class (a mixin of an RQ
    worker: see RQ_PRIVATE_MEMBERS for why each is used)."""

    _set_ip_address_from_redis = BaseWorker._set_ip_address

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @stop_requested.setter
    def stop_requested(self, value: bool) -> None:
        self._stop_requested = value

    @property
    def ordered_queues(self) -> list[Queue]:
        return self._ordered_queues

    @property
    def warm_shutdown_asked_at(self) -> datetime | None:
        return self._shutdown_requested_date

    @warm_shutdown_asked_at.setter
    def warm_shutdown_asked_at(self, value: datetime | None) -> None:
        self._shutdown_requested_date = value

    def install_rq_signal_handlers(self) -> None:
        self._install_signal_handlers()

    def _set_ip_address(self, connection: Redis) -> None:
        # Unreachable Redis at construction: the worker's bootstrap waits for Redis, so start regardless.
        try:
            RQWorkerPrivates._set_ip_address_from_redis(self, connection)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self.ip_address = "unknown"


def rq_job_record_success(rq_job: RQJob, *, return_value: Any, result_ttl: int, pipeline: Pipeline,
                          worker_name: str, execution: Execution) -> None:
    """Write RQ's records of a successful run of `rq_job` on `pipeline`, as RQ's own worker does after
    executing a job: the job's status and return value, its Result, the finished registry."""
    rq_job._result = return_value
    rq_job._status = JobStatus.FINISHED
    if result_ttl != 0:
        rq_job._handle_success(result_ttl, pipeline=pipeline, worker_name=worker_name, execution_id=execution.id,
                               execution_started_at=execution.created_at, execution_ended_at=rq_job.ended_at)
