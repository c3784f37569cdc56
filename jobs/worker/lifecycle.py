"""Writes on jobs from the worker side: claim, task outcomes, final states, recovery.

Every write here is safe to repeat (the database pool retries it over a dropped connection)
and fenced by the attempt it belongs to: a run that was given up (cancel, timeout, lease
expired, re-claimed elsewhere) can store nothing more, so no answer is stored twice and no
call is counted both stored and lost.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest
from django.utils import timezone
from psycopg.types.json import Jsonb

from accounts.models import User
from accounts.services import budget_reached, spend_record_sql
from analysis.engine.catalogue import prices_version
from analysis.engine.model_info import ModelInfo
from analysis.engine.providers.usage import USAGE_KEYS
from analysis.engine.runner import TaskOutcome
from jobs.models import Job, Task, WebhookDelivery
from jobs.services import CANCELED_MESSAGE, execute_sql, job_enqueue, job_finalize_row
from jobs.webhooks import webhook_deliver

logger = logging.getLogger(__name__)


# The statements every job runs (claim, call started, outcome) are written out as SQL: building them
# through the ORM cost the worker more CPU than PostgreSQL took to run them (bench/run.py's queue
# case). The ORM's tables and the fences of the docstrings are the same.
JOB = Job._meta.db_table
TASK = Task._meta.db_table

# Calls in flight when their attempt ended: paid for, answer never stored (job_calls_lost, and the claim).
LOST_CALLS_SQL = "lost_calls = lost_calls + GREATEST(calls_in_flight, 0), calls_in_flight = 0"

CLAIM_SQL = f"""
UPDATE "{JOB}" SET
    status = %(started)s,
    -- A batch job's continuation (its provider batches answered, jobs/worker/provider_batch_poller.py) goes on with the same
    -- attempt: not counted in `attempts`, and its start time kept.
    attempts = CASE WHEN batch_continuation THEN attempts ELSE attempts + 1 END,
    started_at = CASE WHEN batch_continuation THEN started_at ELSE %(now)s END,
    batch_wait_started_at = CASE WHEN batch_continuation THEN batch_wait_started_at END,
    heartbeat_at = %(now)s, error = '', worker = %(worker)s, awaiting_batch = false, batch_continuation = false,
    -- Anything still counted in flight belongs to a dead earlier attempt: paid, lost.
    {LOST_CALLS_SQL}
WHERE id = %(id)s AND status = %(queued)s
RETURNING *"""
# What a run reads of the job's owner (its monthly budget: accounts.services.monthly_budget_of), in the
# same statement as the claim; in the model's field order, as Model.from_db takes them.
OWNER_FIELDS = tuple(f.attname for f in User._meta.concrete_fields if f.attname in ("id", "unlimited", "monthly_budget",
                                                                                     "plan"))
CLAIM_WITH_OWNER_SQL = (f"WITH claimed AS ({CLAIM_SQL}) SELECT claimed.*, "
                        + ", ".join(f'u."{name}" AS "owner__{name}"' for name in OWNER_FIELDS)
                        + f' FROM claimed JOIN "{User._meta.db_table}" u ON u.id = claimed.owner_id')

# The attempt's fence: the row is this attempt's only while it is `started` with this attempt number.
THIS_ATTEMPT_SQL = "id = %(id)s AND attempts = %(attempt)s AND status = %(started)s"
CALL_STARTED_SQL = f'UPDATE "{JOB}" SET calls_in_flight = calls_in_flight + 1 WHERE {THIS_ATTEMPT_SQL}'
CALL_REFUSED_SQL = (f'UPDATE "{JOB}" SET calls_in_flight = GREATEST(calls_in_flight - 1, 0) '
                    f'WHERE {THIS_ATTEMPT_SQL}')
# A task's stored calls leave the in-flight count; those it abandoned (a fallback model answered while they were
# still out) are lost calls: paid for, their answer never used.
CALLS_STORED_SQL = (f'UPDATE "{JOB}" SET calls_in_flight = GREATEST(calls_in_flight - %(calls)s, 0), '
                    f'lost_calls = lost_calls + %(abandoned)s WHERE {THIS_ATTEMPT_SQL}')


def _attempt_params(job: Job, **extra) -> dict:
    return {"id": job.id, "attempt": job.attempts, "started": Job.Status.STARTED, **extra}


def job_claim(*, job_id: uuid.UUID | str, worker: str) -> Job | None:
    """queued → started, atomically, for `worker`; None when another delivery already has it.
    The job comes with its owner's OWNER_FIELDS (the others are deferred, as with `only()`)."""
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_WITH_OWNER_SQL, {
            "id": job_id, "now": timezone.now(), "worker": worker, "queued": Job.Status.QUEUED,
            "started": Job.Status.STARTED})
        row = cursor.fetchone()
        if row is None:
            return None
        columns = dict(zip((column.name for column in cursor.description), row))
    job = _JOB_ROWS.model(columns)
    job.owner = User.from_db(connection.alias, OWNER_FIELDS, [columns[f"owner__{name}"] for name in OWNER_FIELDS])
    return job


def job_tasks(*, job: Job) -> list[Task]:
    """The job's tasks in order, as its run reads them after the claim."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{TASK}" WHERE job_id = %s ORDER BY position', [job.id])
        names = [column.name for column in cursor.description]
        return [_TASK_ROWS.model(dict(zip(names, row))) for row in cursor.fetchall()]


class _Rows:
    """Model instances from the rows of written-out SQL (RETURNING *, SELECT *), each column through its field's
    converters as a queryset loads it (JSON fields arrive as text). A RawQuerySet does the same, but works out
    its columns, converters and model for every query again: for the claim and the task list of every job
    that set-up cost the worker more CPU than the statements."""

    def __init__(self, model: type[Job] | type[Task]) -> None:
        self.model_class = model
        self.fields = []  # (column, its converters, the expression they are given), in the model's field order
        for field in model._meta.concrete_fields:
            expression = field.get_col(model._meta.db_table)
            converters = [*connection.ops.get_db_converters(expression), *field.get_db_converters(connection)]
            self.fields.append((field.column, converters, expression))

    def model(self, columns: dict):
        values = []
        for column, converters, expression in self.fields:
            value = columns[column]
            for converter in converters:
                value = converter(value, expression, connection)
            values.append(value)
        return self.model_class.from_db(connection.alias, None, values)


_JOB_ROWS, _TASK_ROWS = _Rows(Job), _Rows(Task)


def job_call_started(*, job: Job) -> None:
    """A provider call of this attempt is going out: counted in the row until its answer is stored,
    so whoever recovers the job after a crash counts it as lost (paid, answer never stored)."""
    execute_sql(CALL_STARTED_SQL, _attempt_params(job))


def job_call_refused(*, job: Job) -> None:
    """A provider call of this attempt came back with an error status (a 503, a 429): no answer and nothing to
    pay, so no longer in flight (a run stopped later does not count it as lost)."""
    execute_sql(CALL_REFUSED_SQL, _attempt_params(job))


def task_may_start(*, job: Job, check_budget: bool) -> bool:
    """Whether the job's next task may start: not canceled, still this attempt, under its max_cost
    and (when the owner has a monthly budget) under the budget."""
    state = Job.objects.filter(id=job.id).values("cancel_requested", "max_cost", "status", "attempts").first()
    if state is None or state["cancel_requested"]:
        return False
    if state["status"] != Job.Status.STARTED or state["attempts"] != job.attempts:
        # This attempt was given up (lease expired, job canceled or re-claimed elsewhere).
        return False
    if state["max_cost"] is not None:
        spent = Task.objects.filter(job_id=job.id).aggregate(total=Sum("cost"))["total"] or Decimal("0")
        if spent >= state["max_cost"]:
            return False
    # The owner's monthly budget, again: the submit check counts only real spend, so jobs
    # queued side by side could together pass it; this bounds the overrun to calls in flight.
    return not check_budget or not budget_reached(user_id=job.owner_id)


def task_outcome_save(*, job: Job, outcome: TaskOutcome, calls_started: int, task_id: int,
                      priced_model: ModelInfo | None = None, reuse_key: str | None = None) -> bool:
    """Store one task's outcome and bill it, at once (the worker may die any moment after).

    `priced_model`: the catalogue model that answered, for the price provenance (None: no dated price).
    `reuse_key`: the task's key for the model that answered, when that is not the job's (a fallback).
    `calls_started`: the provider calls this task started in this attempt; they leave the row's
    in-flight count in the same transaction that stores their answer. Nothing is written when the
    attempt is no longer the job's (returns False): its calls are counted lost by whoever ended it.
    """
    usage = outcome.usage
    now = timezone.now()
    added = {key: getattr(usage, key) for key in USAGE_KEYS}
    added.update(cost=outcome.cost, tries=outcome.tries, calls=outcome.calls)
    fields = {
        "chunks": outcome.chunks,
        "truncated": outcome.truncated,
        "blocked": outcome.blocked,
        "finish_reason": outcome.finish_reason[:100],
        "latency_s": outcome.latency_s,
        "started_at": now - timedelta(seconds=outcome.latency_s),
        "finished_at": now,
        "provider": outcome.provider or job.provider,
        "model": outcome.model or job.model,
        "fallback_from": Jsonb(outcome.fallback_from),
    }
    if reuse_key:
        fields["reuse_key"] = reuse_key
    if outcome.last_error:
        fields["last_error"] = outcome.last_error
    fields.update(price_provenance(outcome=outcome, priced_model=priced_model))
    if outcome.ok:
        fields.update(status=Task.Status.SUCCEEDED, output=outcome.text, error="", error_kind="")
    else:
        fields.update(status=Task.Status.FAILED, error=outcome.error, error_kind=outcome.error_kind[:30])
    assignments = ([f'"{key}" = "{key}" + %(add_{key})s' for key in added]
                   + [f'"{key}" = %(set_{key})s' for key in fields])
    params = {"task_id": task_id, "succeeded": Task.Status.SUCCEEDED,
              **_attempt_params(job, calls=calls_started, abandoned=outcome.abandoned_calls),
              **{f"add_{k}": v for k, v in added.items()}, **{f"set_{k}": v for k, v in fields.items()}}
    # One statement, so atomic: the fence and the in-flight count (it locks the job row), then the
    # task (a stored result is never overwritten), then the bill, each only if the one before wrote.
    statement = [f"WITH fence AS ({CALLS_STORED_SQL} RETURNING id), "
                 f'stored AS (UPDATE "{TASK}" SET {", ".join(assignments)} WHERE id = %(task_id)s '
                 f"AND status <> %(succeeded)s AND EXISTS (SELECT 1 FROM fence) RETURNING id)"]
    if outcome.cost > 0:
        params.update(owner=job.owner_id, reference=f"task:{task_id}:attempt:{job.attempts}", amount=outcome.cost,
                      now=now)
        statement.append(f", billed AS ({spend_record_sql('stored')})")
    statement.append(" SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM stored)")
    with connection.cursor() as cursor:
        cursor.execute("".join(statement), params)
        fenced, updated = cursor.fetchone()
    if not fenced:
        return False
    if updated:
        logger.info("task done", extra={"job_id": str(job.id), "task": outcome.name, "ok": outcome.ok,
                                        "cost": str(outcome.cost), "tries": outcome.tries})
    return bool(updated)


def price_provenance(*, outcome: TaskOutcome, priced_model: ModelInfo | None) -> dict:
    """Which prices billed the task: the genai-prices version and the start of the dated price in force when
    the task started (the runner bills all of a task's calls at that price). Nothing for a task that made no
    call, or without a catalogue model (`priced_model` None: an endpoint's own prices, an unlisted model)."""
    if not outcome.calls or outcome.priced_at is None or priced_model is None:
        return {}
    return {"price_version": prices_version(), "price_date": priced_model.period_at(outcome.priced_at).start}


def tasks_reuse_finished(*, job: Job, pending: list[Task]) -> list[Task]:
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


def job_finish(*, job: Job, outcomes: list[tuple[str, str]]) -> str:
    """started → finished (some task succeeded) or failed (none did), with totals and the webhook.

    `outcomes`: (status, error) of every task of the job as its run leaves them (the run read them at
    its claim and stored the rest itself: no read here). Returns the row's status afterwards (another
    party may have ended the attempt first: a cancel, the reconciler)."""
    if not outcomes:
        return "deleted"
    succeeded = sum(1 for status, _ in outcomes if status == Task.Status.SUCCEEDED)
    pending = sum(1 for status, _ in outcomes if status == Task.Status.PENDING)
    failed_errors = [error for status, error in outcomes if status == Task.Status.FAILED]
    if succeeded:
        # Finished, with the tasks that did not answer counted (the document then says "partial": true).
        notes = []
        if failed_errors:
            notes.append(f"{len(failed_errors)} of {len(outcomes)} task(s) failed (see `errors`).")
        if pending:
            notes.append(f"{pending} task(s) were not run (the job's max_cost or the monthly spending limit "
                         f"was reached).")
        status, error = Job.Status.FINISHED, " ".join(notes)
    elif failed_errors:
        status, error = Job.Status.FAILED, f"All {len(outcomes)} task(s) failed; first error: {failed_errors[0]}"
    else:  # task_may_start refused every task
        status, error = Job.Status.FAILED, ("No task was run: the job's max_cost or the monthly spending "
                                            "limit was reached.")
    if _finalize_this_attempt(job=job, status=status, error=error):
        _deliver_webhook(job)
    else:
        status = Job.objects.filter(id=job.id).values_list("status", flat=True).first() or "deleted"
    logger.info("job done", extra={"job_id": str(job.id), "status": status})
    return status


def job_fail(*, job: Job, message: str) -> None:
    if _finalize_this_attempt(job=job, status=Job.Status.FAILED, error=message):
        _deliver_webhook(job)


def _deliver_webhook(job: Job) -> None:
    if job.callback_url:  # as claimed: a job without one has no delivery to look up
        webhooks_deliver_now(job_id=job.id)


def _finalize_this_attempt(*, job: Job, status: str, error: str) -> bool:
    # Only the attempt that still holds the row ends it (not one the reconciler gave up on).
    return job_finalize_row(job_id=job.id, status=status, error=error, from_statuses=(Job.Status.STARTED,),
                            attempt=job.attempts, callback_url=job.callback_url)


def webhooks_deliver_now(*, job_id: uuid.UUID | str) -> None:
    """First delivery attempt right away; failures are retried by the reconciler."""
    for delivery_id in WebhookDelivery.objects.filter(job_id=job_id, delivered_at__isnull=True,
                                                      attempts=0).values_list("id", flat=True):
        try:
            webhook_deliver(delivery_id=delivery_id)
        except Exception:  # the job is final whatever the receiver does
            logger.exception("webhook delivery for job %s failed", job_id)


def jobs_heartbeat(*, attempts: dict[str, int]) -> int:
    """Refresh the lease of every job a worker runs, in one statement: only the attempts it holds
    (a zombie run must not keep a job alive that was re-claimed elsewhere). The pairs go as two arrays: a
    worker holding a thousand jobs beats every few seconds, and a thousand ORed conditions cost it more
    CPU to build than the beat is worth."""
    if not attempts:
        return 0
    # Not a batch job that waits (its round just ended): it must keep no heartbeat, or it would look dead.
    return execute_sql(
        f'UPDATE "{JOB}" SET heartbeat_at = %(now)s FROM unnest(%(ids)s::uuid[], %(attempts)s::integer[]) '
        f'AS held(id, attempt) WHERE "{JOB}".id = held.id AND "{JOB}".attempts = held.attempt '
        f'AND "{JOB}".status = %(started)s AND NOT "{JOB}".awaiting_batch',
        {"now": timezone.now(), "ids": list(attempts), "attempts": list(attempts.values()),
         "started": Job.Status.STARTED})


def jobs_run_state(*, job_ids: list[str]) -> dict[str, dict]:
    """What decides whether a running job goes on: its status, cancel flag and attempt (the ids as one array,
    read twice a second for every job a worker runs)."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id::text, status, cancel_requested, attempts FROM "{JOB}" WHERE id = ANY(%s::uuid[])',
                       [list(job_ids)])
        return {job_id: {"id": job_id, "status": status, "cancel_requested": cancel, "attempts": attempt}
                for job_id, status, cancel, attempt in cursor.fetchall()}


# --- recovery ---------------------------------------------------------------------------

def job_recover(*, job_id: uuid.UUID | str, reason: str, stale_before=None, worker: str | None = None,
                counts: bool = True, enqueue: bool = True) -> str | None:
    """A started job whose run is over without a final state (its worker died, it timed out, it was
    handed back): back to `queued` and enqueued again, or `failed` after JOB_MAX_ATTEMPTS, or
    `canceled` if that was asked.

    `stale_before`: act only if the heartbeat is older (the reconciler's lease check, re-checked
    under the row lock). `worker`: act only if that worker holds the attempt. `counts`: False for a
    graceful hand-back, which does not count against the attempt limit. `enqueue`: False while the
    run's own RQ execution is still open (its worker enqueues after closing it).
    Calls in flight are moved to `lost_calls`. Returns the new status, or None if nothing changed.
    """
    with transaction.atomic():
        # The reconciler's scan skips a row someone else holds (it is alive, or the next scan sees
        # it); a run settling its own job waits for the lock: a heartbeat or a task's outcome being
        # stored at that moment must not leave the row `started` with no run behind it.
        rows = Job.objects.select_for_update(skip_locked=stale_before is not None)
        job = rows.filter(id=job_id, status=Job.Status.STARTED).first()
        if job is None:
            return None
        if stale_before is not None and job.heartbeat_at is not None and job.heartbeat_at >= stale_before:
            return None  # it beat in the meantime: alive
        if worker is not None and job.worker != worker:
            return None
        lost = max(job.calls_in_flight, 0)
        job_calls_lost(job_id=job.id)
        if job.cancel_requested:
            job_finalize_row(job_id=job.id, status=Job.Status.CANCELED, error=CANCELED_MESSAGE,
                             from_statuses=(Job.Status.STARTED,))
            new_status = Job.Status.CANCELED
        elif counts and job.attempts - job.attempts_base >= settings.JOB_MAX_ATTEMPTS:
            done = job.tasks.exclude(status=Task.Status.PENDING).count()
            total = job.tasks.count()
            job_finalize_row(job_id=job.id, status=Job.Status.FAILED, from_statuses=(Job.Status.STARTED,), error=(
                f"Gave up after {job.attempts - job.attempts_base} attempts: {reason} "
                f"{done} of {total} task(s) have an outcome; retry the job to run the rest."))
            new_status = Job.Status.FAILED
        else:
            Job.objects.filter(id=job.id).update(
                status=Job.Status.QUEUED, heartbeat_at=None,
                attempts_base=F("attempts_base") + (0 if counts else 1),
            )
            if enqueue:
                transaction.on_commit(lambda: job_enqueue(job_id=job.id, at_front=True))
            new_status = Job.Status.QUEUED
    logger.warning("job recovered: %s → %s (lost calls: %s)", reason, new_status, lost,
                   extra={"job_id": str(job_id)})
    return new_status


def job_settle_after_run(*, job_id: uuid.UUID | str, worker: str, reason: str, counts: bool = True) -> str | None:
    """Called once a run of this job is over, whatever way it ended (returned, stopped by a cancel
    or a timeout, handed back, its work horse killed): nothing of the attempt runs any more, so a
    row still `started` by this worker is handed on (job_recover, not enqueued: the run's worker does
    that once RQ's record of the run is closed, jobs.worker.runs.run_hand_over), and calls still counted in
    flight are lost calls. Returns the row's status, or None when the row is not this worker's."""
    row = Job.objects.filter(id=job_id).values("status", "worker", "calls_in_flight").first()
    if row is None or row["worker"] != worker or not worker:
        return None  # deleted, or another worker's attempt (this delivery was a duplicate)
    if row["status"] == Job.Status.STARTED:
        recovered = job_recover(job_id=job_id, worker=worker, reason=reason, counts=counts, enqueue=False)
        if recovered is not None:
            return recovered
        # Ended by someone else meanwhile (a cancel writes its flag, then the final state): its calls
        # in flight are still ours to count as lost.
        row = Job.objects.filter(id=job_id).values("status", "worker", "calls_in_flight").first()
        if row is None or row["worker"] != worker:
            return None
    if row["calls_in_flight"] > 0:
        job_calls_lost(job_id=job_id, worker=worker)
    return row["status"]


def job_calls_lost(*, job_id: uuid.UUID | str, worker: str | None = None, calls: int | None = None) -> int:
    """Count calls of the job as lost: paid for, their answer never stored. `calls` None: every call its row
    still counts in flight (their attempt is over; the claim does the same in SQL, LOST_CALLS_SQL); a number:
    that many more (a provider batch's requests discarded after they were sent). `worker`: only while that
    worker holds the row. Returns the rows updated."""
    rows = Job.objects.filter(id=job_id)
    if worker is not None:
        rows = rows.filter(worker=worker)
    if calls is None:
        return rows.filter(calls_in_flight__gt=0).update(
            lost_calls=F("lost_calls") + Greatest(F("calls_in_flight"), 0), calls_in_flight=0)
    return rows.update(lost_calls=F("lost_calls") + calls)


def job_status(*, job_id: uuid.UUID | str) -> str | None:
    """The row's status now (None: deleted)."""
    return Job.objects.filter(id=job_id).values_list("status", flat=True).first()
