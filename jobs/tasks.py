"""The worker-side entry point: RQ calls `run_job(job_id)` in a work horse.

Only the id travels through Redis; everything else is read from PostgreSQL.
A job is claimed with a conditional update, so a job delivered twice runs once.
Each task's outcome is saved the moment it completes; a re-run only runs the
tasks that have no result yet.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.services import spend_record
from analysis.catalogue import UnknownModelError
from analysis.limits import ProviderLimiter
from analysis.providers.base import ProviderError
from analysis.runner import RunHooks, TaskOutcome, TaskSpec
from analysis.tasks import run_analysis, run_config
from jobs.models import Job, Task

logger = logging.getLogger(__name__)


def claim_job(job_id: str) -> bool:
    """queued → started, atomically; False when another delivery already has it."""
    now = timezone.now()
    changed = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.STARTED, attempts=F("attempts") + 1, heartbeat_at=now, started_at=now, error="",
    )
    return changed == 1


class Heartbeat:
    """Refreshes `heartbeat_at` while the job runs, from its own thread (and DB connection)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    Job.objects.filter(id=self.job_id, status=Job.Status.STARTED).update(heartbeat_at=timezone.now())
                except Exception:  # a DB blip must not kill the job; the next beat retries
                    logger.warning("heartbeat failed for job %s", self.job_id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()


def provider_limiter() -> ProviderLimiter:
    import django_rq

    return ProviderLimiter(
        django_rq.get_connection("default"),
        max_in_flight=settings.PROVIDER_MAX_IN_FLIGHT,
        per_minute=settings.PROVIDER_MAX_PER_MINUTE,
        lease_seconds=settings.PROVIDER_REQUEST_TIMEOUT + 30,
    )


def save_outcome(job: Job, outcome: TaskOutcome) -> None:
    """Persist one task's outcome and bill it, at once (the worker may die any moment after)."""
    if outcome.skipped:
        return
    usage = outcome.usage
    fields = {
        "input_tokens": F("input_tokens") + usage.input_tokens,
        "cached_input_tokens": F("cached_input_tokens") + usage.cached_input_tokens,
        "cache_write_tokens": F("cache_write_tokens") + usage.cache_write_tokens,
        "output_tokens": F("output_tokens") + usage.output_tokens,
        "reasoning_tokens": F("reasoning_tokens") + usage.reasoning_tokens,
        "cost": F("cost") + outcome.cost,
        "tries": F("tries") + outcome.tries,
        "calls": F("calls") + outcome.calls,
        "chunks": outcome.chunks,
        "truncated": outcome.truncated,
        "blocked": outcome.blocked,
        "finish_reason": outcome.finish_reason[:100],
        "latency_s": outcome.latency_s,
        "finished_at": timezone.now(),
    }
    if outcome.ok:
        fields.update(status=Task.Status.SUCCEEDED, output=outcome.text, error="")
    else:
        fields.update(status=Task.Status.FAILED, error=outcome.error)
    with transaction.atomic():
        # Only a task still without a result is written: a stored result is never overwritten.
        updated = Task.objects.filter(job=job, name=outcome.name).exclude(status=Task.Status.SUCCEEDED).update(**fields)
        if updated and outcome.cost > 0:
            task_id = Task.objects.filter(job=job, name=outcome.name).values_list("id", flat=True).first()
            spend_record(user_id=job.owner_id, reference=f"task:{task_id}:attempt:{job.attempts}",
                         amount=outcome.cost)
    logger.info("task done", extra={"job_id": str(job.id), "task": outcome.name, "ok": outcome.ok,
                                    "cost": str(outcome.cost), "tries": outcome.tries})


def finalize_job(job_id: str) -> Job:
    """started → finished (some task succeeded) or failed (none did), with totals."""
    job = Job.objects.get(id=job_id)
    tasks = list(job.tasks.all())
    total = job.tasks.aggregate(total=Sum("cost"))["total"] or Decimal("0")
    succeeded = [t for t in tasks if t.status == Task.Status.SUCCEEDED]
    pending = [t for t in tasks if t.status == Task.Status.PENDING]
    now = timezone.now()
    if job.cancel_requested:
        status, error = Job.Status.CANCELED, "Canceled by request."
    elif succeeded and not pending:
        status, error = Job.Status.FINISHED, ""
    elif succeeded:
        status, error = Job.Status.FINISHED, f"{len(pending)} task(s) were not run (cost limit reached)."
    else:
        failed = [t for t in tasks if t.status == Task.Status.FAILED]
        first = failed[0].error if failed else "no task produced a result"
        status, error = Job.Status.FAILED, f"All {len(tasks)} task(s) failed; first error: {first}"
    Job.objects.filter(id=job_id, status=Job.Status.STARTED).update(
        status=status, error=error, total_cost=total, finished_at=now, heartbeat_at=now,
    )
    job.refresh_from_db()
    logger.info("job done", extra={"job_id": str(job.id), "status": job.status, "total_cost": str(job.total_cost)})
    return job


def fail_job(job_id: str, message: str) -> None:
    now = timezone.now()
    total = Task.objects.filter(job_id=job_id).aggregate(total=Sum("cost"))["total"] or Decimal("0")
    Job.objects.filter(id=job_id, status=Job.Status.STARTED).update(
        status=Job.Status.FAILED, error=message, finished_at=now, heartbeat_at=now, total_cost=total,
    )


def run_job(job_id: str) -> str:
    close_old_connections()
    if not claim_job(job_id):
        logger.info("job %s is not queued (already claimed, canceled or deleted); skipping", job_id)
        return "skipped"
    job = Job.objects.select_related("owner").get(id=job_id)
    pending = list(job.tasks.exclude(status=Task.Status.SUCCEEDED).order_by("position"))
    specs = [TaskSpec(name=t.name, prompt=t.prompt) for t in pending]
    try:
        config = run_config(provider=job.provider, model=job.model, system_prompt=job.system_prompt,
                            max_output_tokens=job.params.get("max_output_tokens"),
                            temperature=job.params.get("temperature"))
    except (UnknownModelError, ValueError) as exc:
        fail_job(job_id, str(exc))
        return "failed"

    def should_start(name: str) -> bool:
        state = Job.objects.filter(id=job_id).values("cancel_requested", "max_cost").first()
        if state is None or state["cancel_requested"]:
            return False
        if state["max_cost"] is not None:
            spent = Task.objects.filter(job_id=job_id).aggregate(total=Sum("cost"))["total"] or Decimal("0")
            return spent < state["max_cost"]
        return True

    def on_start(name: str) -> None:
        Task.objects.filter(job_id=job_id, name=name, started_at__isnull=True).update(started_at=timezone.now())

    def on_done(outcome: TaskOutcome) -> None:
        try:
            save_outcome(job, outcome)
        finally:
            # Runner threads each opened their own connection; don't leave them behind.
            connection.close()

    hooks = RunHooks(should_start=should_start, on_start=on_start, on_done=on_done)
    try:
        with Heartbeat(job_id):
            run_analysis(transcript=job.transcript, config=config, tasks=specs, limiter=provider_limiter(),
                         hooks=hooks)
    except ProviderError as exc:  # e.g. the provider's key was removed since submission
        fail_job(job_id, exc.message)
        return "failed"
    finally:
        close_old_connections()
    return finalize_job(job_id).status
