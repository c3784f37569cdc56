"""The worker-side entry point: RQ calls `run_job(job_id)` in a work horse.

Only the id travels through Redis; everything else is read from PostgreSQL.
A job is claimed with a conditional update, so a job delivered twice runs once.
Each task's outcome is saved the moment it completes; a re-run only runs the
tasks that have no result yet.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.services import budget_reached, monthly_budget_of, spend_record
from analysis.catalogue import UnknownModelError
from analysis.limits import ProviderLimiter
from analysis.providers.base import ProviderError
from analysis.runner import RunHooks, TaskOutcome, TaskSpec
from analysis.tasks import run_analysis, run_config
from jobs.models import Job, Task
from jobs.services import CANCELED_MESSAGE, job_finalize_row, job_recover
from jobs.queues import rq_connection

logger = logging.getLogger(__name__)

T = TypeVar("T")


def db_retry(fn: Callable[[], T], *, tries: int = 8) -> T:
    """Run a short DB operation, reconnecting on a dropped connection (PostgreSQL restarted,
    pg_terminate_backend, a network blip) instead of losing the write.

    Only for operations that are safe to repeat (conditional updates, get_or_create).
    Never inside an atomic block: the connection is closed and reopened here.
    """
    for attempt in range(tries):
        try:
            return fn()
        except (OperationalError, InterfaceError) as exc:
            if attempt == tries - 1:
                raise
            logger.warning("database connection lost (%s); reconnecting", str(exc).strip()[:120])
            try:
                connection.close()
            except Exception:  # the socket is already gone; the wrapper is reset all the same
                connection.connection = None
            time.sleep(min(0.2 * 2 ** attempt, 5.0))
    raise AssertionError("unreachable")


def worker_name() -> str:
    # RQ sets RQ_WORKER_ID in the worker before forking the horse; empty in a SimpleWorker/test.
    return os.environ.get("RQ_WORKER_ID", "")


def claim_job(job_id: str) -> bool:
    """queued → started, atomically; False when another delivery already has it."""
    now = timezone.now()
    changed = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.STARTED, attempts=F("attempts") + 1, heartbeat_at=now, started_at=now, error="",
        worker=worker_name(),
        # Anything still counted in flight belongs to a dead earlier attempt: paid, lost.
        lost_calls=F("lost_calls") + Greatest(F("calls_in_flight"), 0), calls_in_flight=0,
    )
    return changed == 1


# --- graceful hand-back on worker shutdown --------------------------------------------
# The worker parent forwards a warm shutdown (SIGTERM) to its horse as SIGUSR1. The horse
# then starts no new task, lets calls in flight finish for WORKER_SHUTDOWN_GRACE_SECONDS
# (they are paid for) and hands the job back as `queued`; its worker enqueues it again.
_handback = threading.Event()
_current_job: dict[str, object] = {}


def request_handback(signum=None, frame=None) -> None:
    job_id = _current_job.get("id")
    if job_id is None or _handback.is_set():
        return  # not in a horse running a job (the parent inherits this handler harmlessly)
    _handback.set()
    timer = threading.Timer(settings.WORKER_SHUTDOWN_GRACE_SECONDS, _hand_back_now, args=(str(job_id),))
    timer.daemon = True
    _current_job["timer"] = timer
    timer.start()


def _hand_back(job_id: str) -> str | None:
    return db_retry(lambda: job_recover(job_id=job_id, worker=worker_name(), counts=False, enqueue=False,
                                        reason="its worker was shut down."), tries=3)


def _hand_back_now(job_id: str) -> None:
    # Grace is over and calls are still in flight: give the job back now (those calls are
    # counted as lost) and end the horse, so the worker can exit before it is SIGKILLed.
    try:
        _hand_back(job_id)
    except Exception:
        logger.exception("hand-back of job %s failed; the reconciler will recover it", job_id)
    finally:
        os._exit(0)


class Heartbeat:
    """Refreshes `heartbeat_at` while the job runs, from its own thread (and DB connection)."""

    def __init__(self, job_id: str, attempt: int) -> None:
        self.job_id = job_id
        self.attempt = attempt
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
                    # Only this attempt's lease: a zombie horse must not keep a re-claimed job alive.
                    Job.objects.filter(id=self.job_id, status=Job.Status.STARTED, attempts=self.attempt).update(
                        heartbeat_at=timezone.now())
                except (OperationalError, InterfaceError) as exc:  # PostgreSQL restarted or dropped us
                    logger.warning("heartbeat for job %s: database connection lost (%s); reconnecting",
                                   self.job_id, str(exc).strip()[:120])
                    try:
                        connection.close()
                    except Exception:
                        connection.connection = None
                except Exception:  # a DB blip must not kill the job; the next beat retries
                    logger.warning("heartbeat failed for job %s", self.job_id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()


def provider_limiter() -> ProviderLimiter:
    return ProviderLimiter(
        rq_connection(),
        max_in_flight=settings.PROVIDER_MAX_IN_FLIGHT,
        per_minute=settings.PROVIDER_MAX_PER_MINUTE,
        lease_seconds=settings.PROVIDER_REQUEST_TIMEOUT + 30,
    )


def save_outcome(job: Job, outcome: TaskOutcome, *, calls_started: int = 0,
                 task_ids: dict[str, int] | None = None) -> None:
    """Persist one task's outcome and bill it, at once (the worker may die any moment after).

    `calls_started`: the provider calls this task started in this attempt; they leave the job's
    in-flight count in the same transaction that stores their answer, so a horse killed between
    a call's response and this write still counts that call as lost.
    """
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
        "started_at": timezone.now() - timedelta(seconds=outcome.latency_s),
        "finished_at": timezone.now(),
    }
    if outcome.last_error:
        fields["last_error"] = outcome.last_error
    if outcome.ok:
        fields.update(status=Task.Status.SUCCEEDED, output=outcome.text, error="")
    else:
        fields.update(status=Task.Status.FAILED, error=outcome.error)

    def write() -> int:
        with transaction.atomic():
            # Only a task still without a result is written: a stored result is never overwritten.
            updated = Task.objects.filter(job=job, name=outcome.name).exclude(status=Task.Status.SUCCEEDED).update(**fields)
            if updated and outcome.cost > 0:
                task_id = task_ids.get(outcome.name) if task_ids else None
                if task_id is None:
                    task_id = Task.objects.filter(job=job, name=outcome.name).values_list("id", flat=True).first()
                spend_record(user_id=job.owner_id, reference=f"task:{task_id}:attempt:{job.attempts}",
                             amount=outcome.cost)
            if calls_started:
                Job.objects.filter(id=job.id, attempts=job.attempts).update(
                    calls_in_flight=Greatest(F("calls_in_flight") - calls_started, 0))
        return updated

    # The provider call is paid for: losing this write to a dropped DB connection would send the
    # task again on the next attempt. Retrying the transaction is safe (the write is conditional,
    # the ledger entry idempotent).
    if db_retry(write):
        logger.info("task done", extra={"job_id": str(job.id), "task": outcome.name, "ok": outcome.ok,
                                        "cost": str(outcome.cost), "tries": outcome.tries})


def finalize_job(job_id: str) -> str:
    """started → finished (some task succeeded) or failed (none did), with totals. Returns the
    row's status afterwards (another party may have finalized or recovered it first)."""
    # The tasks with the job's two flags in one read (a job always has tasks: none means deleted).
    rows = list(Task.objects.filter(job_id=job_id).order_by("position")
                .values_list("status", "error", "job__cancel_requested", "job__callback_url"))
    if not rows:
        return "deleted"
    state = {"cancel_requested": rows[0][2], "callback_url": rows[0][3]}
    tasks = [(status, error) for status, error, _, _ in rows]
    succeeded = sum(1 for status, _ in tasks if status == Task.Status.SUCCEEDED)
    pending = sum(1 for status, _ in tasks if status == Task.Status.PENDING)
    failed_errors = [error for status, error in tasks if status == Task.Status.FAILED]
    if state["cancel_requested"]:
        status, error = Job.Status.CANCELED, CANCELED_MESSAGE
    elif succeeded and not pending:
        status, error = Job.Status.FINISHED, ""
    elif succeeded:
        status, error = Job.Status.FINISHED, (f"{pending} task(s) were not run (the job's max_cost or the "
                                              f"monthly spending limit was reached).")
    elif failed_errors:
        status, error = Job.Status.FAILED, f"All {len(tasks)} task(s) failed; first error: {failed_errors[0]}"
    else:  # should_start refused every task (jobs.tasks.run_job)
        status, error = Job.Status.FAILED, ("No task was run: the job's max_cost or the monthly spending "
                                            "limit was reached.")
    if job_finalize_row(job_id=job_id, status=status, error=error, from_statuses=(Job.Status.STARTED,)):
        if state["callback_url"]:
            deliver_webhooks_now(job_id)
    else:
        status = Job.objects.filter(id=job_id).values_list("status", flat=True).first() or "deleted"
    logger.info("job done", extra={"job_id": job_id, "status": status})
    return status


def fail_job(job_id: str, message: str) -> None:
    if job_finalize_row(job_id=job_id, status=Job.Status.FAILED, error=message, from_statuses=(Job.Status.STARTED,)):
        deliver_webhooks_now(job_id)


def deliver_webhooks_now(job_id: str) -> None:
    """First delivery attempt right away, from the horse; failures are retried by the reconciler."""
    from jobs.models import WebhookDelivery
    from jobs.webhooks import webhook_deliver

    for delivery_id in WebhookDelivery.objects.filter(job_id=job_id, delivered_at__isnull=True,
                                                      attempts=0).values_list("id", flat=True):
        try:
            webhook_deliver(delivery_id=delivery_id)
        except Exception:  # the job is final whatever the receiver does
            logger.exception("webhook delivery for job %s failed", job_id)


def reuse_finished_results(job: Job, pending: list[Task]) -> list[Task]:
    """Give pending tasks the output of an identical finished task of the same owner (within
    RESULT_REUSE_TTL_SECONDS) at zero cost, without a provider call. Returns the tasks still to run."""
    if not job.reuse_results or settings.RESULT_REUSE_TTL_SECONDS <= 0:
        return pending
    since = timezone.now() - timedelta(seconds=settings.RESULT_REUSE_TTL_SECONDS)
    remaining = []
    for task in pending:
        donor = None
        if task.reuse_key:
            # Same owner only: another user's answer to the same transcript must never leak.
            donor = (Task.objects.filter(reuse_key=task.reuse_key, status=Task.Status.SUCCEEDED,
                                         job__owner_id=job.owner_id, finished_at__gte=since)
                     .exclude(job_id=job.id).order_by("-finished_at").first())
        if donor is None:
            remaining.append(task)
            continue
        now = timezone.now()
        Task.objects.filter(id=task.id, status=Task.Status.PENDING).update(
            status=Task.Status.SUCCEEDED, output=donor.output, error="", reused=True, truncated=donor.truncated,
            chunks=donor.chunks, finish_reason=donor.finish_reason, latency_s=0.0, started_at=now, finished_at=now,
        )
        logger.info("task reused", extra={"job_id": str(job.id), "task": task.name, "from_task": donor.id})
    return remaining


def start_state(job_id: str) -> dict | None:
    """What decides whether the job's next task may start (see _run_claimed_job's should_start)."""
    return Job.objects.filter(id=job_id).values("cancel_requested", "max_cost", "status", "attempts").first()


def warm_up_job_path() -> None:
    """Run a job's database statements once, in the worker parent, matching no row, and roll back.

    A forked horse starts from its parent's memory: Django's per-model and per-connection
    caches, and the bytecode CPython has specialized for the ORM and psycopg code a job runs.
    Built here once, no horse builds them again, nor copies (copy-on-write) the pages that
    building them writes: about 3.5 ms of CPU and 800 page faults less per job, measured with
    forked run_job calls. The caller closes the connection before forking.
    """
    nobody = str(uuid.UUID(int=0))
    with transaction.atomic():
        claim_job(nobody)
        Job.objects.select_related("owner").filter(id=nobody).first()
        list(Task.objects.filter(job_id=nobody, status=Task.Status.PENDING).order_by("position"))
        start_state(nobody)
        save_outcome(Job(id=nobody, owner_id=0, attempts=0), TaskOutcome(name="warm-up"), calls_started=1)
        finalize_job(nobody)
        job_finalize_row(job_id=nobody, status=Job.Status.FINISHED, error="", from_statuses=(Job.Status.STARTED,))
        transaction.set_rollback(True)


def run_job(job_id: str) -> str:
    close_old_connections()
    if not db_retry(lambda: claim_job(job_id)):
        logger.info("job %s is not queued (already claimed, canceled or deleted); skipping", job_id)
        return "skipped"
    _current_job["id"] = job_id
    try:
        return _run_claimed_job(job_id)
    finally:
        _current_job.clear()


def _run_claimed_job(job_id: str) -> str:
    job = db_retry(lambda: Job.objects.select_related("owner").get(id=job_id))
    # Only tasks without an outcome run: a task with a stored result is never sent again
    # (a failed one runs again only when the job is retried, which makes it pending).
    pending = db_retry(lambda: list(job.tasks.filter(status=Task.Status.PENDING).order_by("position")))
    pending = db_retry(lambda: reuse_finished_results(job, pending))
    specs = [TaskSpec(name=t.name, prompt=t.prompt) for t in pending]
    task_ids = {t.name: t.id for t in pending}
    try:
        config = run_config(provider=job.provider, model=job.model, system_prompt=job.system_prompt,
                            max_output_tokens=job.params.get("max_output_tokens"),
                            temperature=job.params.get("temperature"))
    except (UnknownModelError, ValueError) as exc:
        fail_job(job_id, str(exc))
        return "failed"

    has_budget = monthly_budget_of(job.owner) is not None
    # The row as read just after the claim serves the first task to start; the others read it
    # again (a cancel between claim and first task also kills this horse: jobs.services.job_cancel).
    claimed_state = [{"cancel_requested": job.cancel_requested, "max_cost": job.max_cost, "status": job.status,
                      "attempts": job.attempts}]

    def should_start(name: str) -> bool:
        return db_retry(lambda: _should_start(name))

    def _should_start(name: str) -> bool:
        if _handback.is_set():
            return False  # the worker is shutting down: hand the rest back
        try:
            state = claimed_state.pop()
        except IndexError:
            state = start_state(job_id)
        if state is None or state["cancel_requested"]:
            return False
        if state["status"] != Job.Status.STARTED or state["attempts"] != job.attempts:
            # This attempt was given up (lease expired, job canceled or re-claimed elsewhere):
            # a zombie horse must not send another task the new attempt will send too.
            return False
        if state["max_cost"] is not None:
            spent = Task.objects.filter(job_id=job_id).aggregate(total=Sum("cost"))["total"] or Decimal("0")
            if spent >= state["max_cost"]:
                return False
        # The owner's monthly budget, again: the submit check counts only real spend, so jobs
        # queued side by side could together pass it; this bounds the overrun to calls in flight.
        # (No budget when the job started, e.g. an unlimited user: no spend query per task.)
        return not has_budget or not budget_reached(user_id=job.owner_id)

    calls_started: dict[str, int] = {}
    calls_lock = threading.Lock()
    main_thread = threading.current_thread()

    def on_call(name: str, event: str) -> None:
        # Calls whose answer is not stored yet, in the row: if this horse dies now, whoever
        # recovers the job counts them as lost (paid for, answer never stored). They leave the
        # count when the task's outcome is saved (save_outcome), not when the response arrives.
        if event != "start":
            return
        with calls_lock:
            calls_started[name] = calls_started.get(name, 0) + 1
        db_retry(lambda: Job.objects.filter(id=job_id, attempts=job.attempts).update(
            calls_in_flight=F("calls_in_flight") + 1))

    def on_done(outcome: TaskOutcome) -> None:
        with calls_lock:
            started = calls_started.pop(outcome.name, 0)
        try:
            save_outcome(job, outcome, calls_started=started, task_ids=task_ids)
        finally:
            # Runner pool threads each opened their own connection; don't leave them behind
            # (the runner calls a lone task on this thread, whose connection goes on).
            if threading.current_thread() is not main_thread:
                connection.close()

    # No on_start write: a task's start time is saved with its outcome (one write per task, not two).
    hooks = RunHooks(should_start=should_start, on_done=on_done, on_call=on_call)
    try:
        with Heartbeat(job_id, job.attempts):
            run_analysis(transcript=job.transcript, config=config, tasks=specs, limiter=provider_limiter(),
                         hooks=hooks)
    except ProviderError as exc:  # e.g. the provider's key was removed since submission
        db_retry(lambda: fail_job(job_id, exc.message))
        return "failed"
    finally:
        close_old_connections()
    if _handback.is_set():
        timer = _current_job.get("timer")
        if timer is not None:
            timer.cancel()
        if db_retry(lambda: job.tasks.filter(status=Task.Status.PENDING).exists()):
            _hand_back(job_id)
            return "handed back"
    return db_retry(lambda: finalize_job(job_id))
