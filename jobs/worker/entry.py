"""The RQ entry point: RQ calls `run_job(job_id)` in the work horse of a forking worker
(jobs.worker.ForkingWorker) or in a plain `rq.SimpleWorker`.

The default worker (jobs.worker.ScriptRipperWorker) runs each job in a slot of its own and
never calls this. Only the id travels through Redis; the run itself is jobs/worker/runs.py.
"""

from __future__ import annotations

from django.conf import settings
from rq import get_current_job

from analysis.engine.execution import CallPool
from jobs.worker.dbpool import DatabasePool
from jobs.worker.runs import JobSlot, SlotMonitor, job_run

# The run of this work horse, for the shutdown signal its worker forwards (SIGUSR1).
_horse_slots: list[JobSlot] = []


def run_job(job_id: str) -> str:
    rq_job = get_current_job()
    db = DatabasePool(2, name="horse-db")
    calls = CallPool(settings.WORKER_CALL_THREADS, name="horse-call")
    slot = JobSlot(job_id=job_id, worker=rq_job.worker_name if rq_job else "", db=db, calls=calls,
                   timeout=float((rq_job.timeout if rq_job else None) or settings.JOB_TIMEOUT))
    monitor = SlotMonitor(db=db, slots=lambda: [slot]).start()
    _horse_slots.append(slot)
    try:
        return job_run(slot).value
    finally:
        _horse_slots.remove(slot)
        monitor.stop()
        calls.shutdown(wait=False)
        db.shutdown()


def shut_down_horse_runs(signum=None, frame=None) -> None:
    """The worker is shutting down: the horse's run hands its job back after the calls in flight."""
    for slot in list(_horse_slots):
        slot.shut_down(settings.WORKER_SHUTDOWN_GRACE_SECONDS)
