"""Writes on jobs: create and enqueue, final states, cancel, retry, delete (submissions: jobs/submission.py).

The database row is the truth and the queue only delivers: a job row is
created first, and it is enqueued only after the transaction commits, with the
row's UUID as the RQ job id. Only the id travels to the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob

from accounts.models import User
from analysis.engine.model_info import ModelInfo
from analysis.engine.planning import TaskSpec
from analysis.engine.processing import mode_refusal
from analysis.engine.turns import stored_turns
from jobs.models import Job, Task
from jobs.queues import rq_connection, rq_queue, started_registry_entries
from jobs.sharing import expiry_timestamp, new_nonce
from jobs.webhooks import webhook_schedule
from scriptripper.errors import Conflict, NotFoundError, validation_error
from transcripts.retrieval import TranscriptScope
from transcripts.services import transcript_hold, transcript_store

logger = logging.getLogger(__name__)

RUN_JOB_FUNC = "jobs.tasks.run_job"
NO_SUCH_TRANSCRIPT = "No such transcript: give the id of one of yours (GET /api/v1/transcripts)."
TRANSCRIPT_GONE = ("The transcript of this job was deleted; it cannot run again. Store the transcript again "
                   "(POST /api/v1/transcripts) and submit a new job.")


@dataclass(frozen=True)
class JobRequest:
    """Everything a job needs, checked (by jobs.submission for the API and the CLI, or by a test)."""

    provider: str
    model: str
    transcript: str
    tasks: list[TaskSpec]
    system_prompt: str = ""
    transcript_format: str = "text"
    kind: str = Job.Kind.ANALYZE
    profile_name: str = ""
    params: dict = field(default_factory=dict)
    reuse_results: bool = True
    max_cost: Decimal | None = None
    callback_url: str = ""
    language: str = ""  # BCP 47; already written into every task (analysis/engine/structured.py)
    queue: str | None = None
    # None: the queue's default (LOW_QUEUE_PROCESSING for `low`, else standard); checked at submit.
    processing: str | None = None
    fallback: str = "standard"
    # The fallback chain, checked: [{"provider", "model"}] (analysis/engine/fallbacks.py).
    fallback_models: list[dict] = field(default_factory=list)
    # Derived by the submission, not part of what was asked (compare=False keeps them out of the
    # Idempotency-Key fingerprint): the model as resolved, the transcript's tokens when counted.
    model_info: ModelInfo | None = field(default=None, compare=False)
    transcript_tokens: int | None = field(default=None, compare=False)
    # The stored transcript named by `transcript_id` (its text is `transcript`); None: store the text, or find
    # the owner's row of the same text (transcripts.services.transcript_store).
    transcript_ref: uuid.UUID | None = field(default=None, compare=False)
    # An ask job (kind ask, its one task the question): its scope as sent (None: all of the owner's transcripts),
    # and as read at submit (transcripts/retrieval.py: its transcripts and their size), which the job keeps.
    scope: dict | None = None
    scope_read: TranscriptScope | None = field(default=None, compare=False)

    @property
    def chars(self) -> int:
        """The size of what the job reads, for routing: its transcript, or its scope's transcripts."""
        return self.scope_read.chars if self.scope_read is not None else len(self.transcript)


def job_processing(*, request: JobRequest, queue: str) -> str:
    """The processing mode a job runs in: the one it asked for (checked at submit), else the queue's
    default where the model has that price (LOW_QUEUE_PROCESSING), else standard."""
    if request.processing:
        return request.processing
    if queue != "low" or settings.LOW_QUEUE_PROCESSING == "standard":
        return "standard"
    info = request.model_info
    if info is None or mode_refusal(provider=request.provider, info=info, processing=settings.LOW_QUEUE_PROCESSING):
        return "standard"
    return settings.LOW_QUEUE_PROCESSING


def route_queue(*, user: User, transcript_chars: int, kind: str) -> str:
    """First routing rule: pro users with short transcripts go to `high`,
    very long transcripts and batches to `low`, the rest to `default`."""
    if transcript_chars >= settings.ROUTING_LOW_MIN_CHARS:
        return "low"
    if kind == Job.Kind.BATCH:
        return "low"
    if user.is_pro and transcript_chars <= settings.ROUTING_HIGH_MAX_CHARS:
        return "high"
    return "default"


def job_create(*, owner: User, request: JobRequest, idempotency_key: str = "", request_fingerprint: str = "") -> Job:
    queue = request.queue or route_queue(user=owner, transcript_chars=request.chars, kind=request.kind)
    with transaction.atomic():
        # Held (locked against deletion) until the job is committed: a job never points at a deleted transcript.
        if request.scope_read is not None:
            stored = None  # an ask reads its scope's transcripts, and holds none of them (retrieval reads what is left)
        elif request.transcript_ref is not None:
            stored = transcript_hold(owner=owner, transcript_id=request.transcript_ref)
            if stored is None:
                raise validation_error("transcript_id", NO_SUCH_TRANSCRIPT)  # deleted since it was read
        else:
            stored, _ = transcript_store(owner=owner, text=request.transcript, fmt=request.transcript_format)
        job = Job.objects.create(
            owner=owner,
            kind=request.kind,
            queue=queue,
            provider=request.provider,
            model=request.model,
            profile_name=request.profile_name,
            system_prompt=request.system_prompt,
            transcript=request.transcript,
            transcript_ref=stored,
            transcript_format=request.transcript_format,
            turns=stored_turns(request.transcript),
            language=request.language,
            processing=job_processing(request=request, queue=queue),
            fallback=request.fallback,
            fallback_models=request.fallback_models,
            params=request.params,
            reuse_results=request.reuse_results,
            max_cost=request.max_cost,
            callback_url=request.callback_url,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            scope=None if request.scope_read is None else {
                "given": request.scope, "transcripts": [str(i) for i in request.scope_read.ids]},
        )
        Task.objects.bulk_create(
            # An ask's answer depends on its scope, which no reuse key holds: it is never reused (nor offered).
            Task(job=job, position=position, name=spec.name, prompt=spec.prompt, provider=job.provider,
                 model=job.model,
                 reuse_key=task_reuse_key(job=job, prompt=spec.prompt) if request.scope_read is None else "")
            for position, spec in enumerate(request.tasks)
        )
        job_id = job.id
        # After commit, never before: a worker must not be handed an id whose row it cannot see yet.
        transaction.on_commit(lambda: job_enqueue(job_id=job_id, first_delivery=True, queue_name=queue))
    logger.info("job created", extra={"job_id": str(job.id), "queue": queue, "tasks": len(request.tasks)})
    return job


def remove_rq_job(*, job_id: uuid.UUID | str, connection=None) -> None:
    """Forget a previous delivery of this job in RQ: the job hash and its registry entries.

    Enqueueing again under the same id while a dead run still sits in RQ's started
    registry lets RQ's own cleanup fail the new run.
    """
    job_id = str(job_id)
    connection = connection or rq_connection()
    for name in settings.RQ_QUEUE_NAMES:
        queue = rq_queue(name)
        queue.remove(job_id)
        connection.lrem(queue.intermediate_queue_key, 0, job_id)
        # RQ 3's started registry is keyed by execution and its remove() is not implemented: drop every
        # execution of this job by hand.
        stale = [entry for entry_job_id, entry in started_registry_entries(queue, connection) if entry_job_id == job_id]
        if stale:
            connection.zrem(queue.started_job_registry.key, *stale)
        for registry in (queue.failed_job_registry, queue.finished_job_registry,
                         queue.canceled_job_registry, queue.deferred_job_registry, queue.scheduled_job_registry):
            try:
                registry.remove(job_id)
            except Exception:  # registries differ slightly across RQ versions; removal is best effort
                connection.zrem(registry.key, job_id)
    try:
        RQJob.fetch(job_id, connection=connection).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass


def job_enqueue(*, job_id: uuid.UUID | str, at_front: bool = False, first_delivery: bool = False,
                queue_name: str | None = None) -> bool:
    """Put a queued job on its RQ queue. False when Redis is unreachable: the row
    stays `queued` and the reconciler enqueues it when Redis is back.

    `at_front`: an interrupted job (its worker died or shut down) resumes before the
    backlog rather than waiting behind every job submitted since it first started.
    `first_delivery`: a new row's UUID has never been in RQ, so there is no earlier run
    to remove (the removal scans the queues and registries: O(queue length) per submit)."""
    job_id = str(job_id)
    try:
        if first_delivery and queue_name:
            # Just committed by job_create: no need to read the row back.
            _rq_push(rq_queue(queue_name), job_id, at_front=at_front)
            return True
        # Two parties may deliver one job again at once (a worker handing it back, the reconciler
        # finding it missing from Redis): one at a time, each reading the row and removing any earlier
        # delivery first, so the job is listed once and never after a worker has claimed it.
        with rq_connection().lock(f"scriptripper:enqueue:{job_id}", timeout=30, blocking_timeout=30):
            job = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).only("id", "queue").first()
            if job is None:
                return False
            queue = rq_queue(job.queue)
            remove_rq_job(job_id=job_id, connection=queue.connection)
            _rq_push(queue, job_id, at_front=at_front)
    except RedisError as exc:
        logger.warning("could not enqueue job %s (%s); the reconciler will retry", job_id, type(exc).__name__)
        return False
    return True


def _rq_push(queue, job_id: str, *, at_front: bool) -> None:
    # Given a pipeline, RQ queues its writes (the queue set, the job hash, the push) on it: one round trip.
    with queue.connection.pipeline() as pipe:
        queue.enqueue_call(RUN_JOB_FUNC, args=(job_id,), job_id=job_id, timeout=settings.JOB_TIMEOUT, result_ttl=600,
                           failure_ttl=7 * 24 * 3600, at_front=at_front, pipeline=pipe)
        pipe.execute()


# --- fingerprints -------------------------------------------------------------------

def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def task_reuse_key(*, job: Job, prompt: str, provider: str | None = None, model: str | None = None) -> str:
    """Everything that determines a task's answer; equal keys may share one provider call (result reuse).

    For the job's own model, or for `provider` and `model` (a task answered by its fallback chain is stored
    under the key of the model that answered, so only a job asking that model reuses it). The owner is not in
    the key: reuse is looked up within the same owner's tasks only.
    """
    return digest(["v1", job.transcript, provider or job.provider, model or job.model, job.system_prompt, prompt,
                   job.params])


# --- final states --------------------------------------------------------------------

CANCELED_MESSAGE = "Canceled by request."


def execute_sql(sql: str, params: dict) -> int:
    """One written-out statement on this thread's connection; the rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# The sum of a job's task costs, as a correlated subquery of the UPDATE that ends the job. Written out
# because every job ends through it: built with the ORM (Subquery of an annotated Sum), compiling the
# subquery took more of the worker's CPU than the rest of the statement took to compile, send and run.
TASKS_COST_SQL = (f'SELECT COALESCE(SUM(t."cost"), 0) FROM "{Task._meta.db_table}" t '
                  f'WHERE t."job_id" = "{Job._meta.db_table}"."id"')


def job_finalize_row(*, job_id: uuid.UUID | str, status: str, error: str, from_statuses: tuple[str, ...],
                     attempt: int | None = None, callback_url: str | None = None) -> bool:
    """Move a job to a final state if it is in one of `from_statuses` (and, given `attempt`, still in
    that attempt); totals and webhook with it. `callback_url`: the job's, when the caller knows it.

    Conditional (one UPDATE, which also sums the tasks' costs), so whichever of worker,
    reconciler or API gets there first decides the final state and the others change nothing.
    """
    now = timezone.now()
    # Written out, as the worker's other per-job statements (jobs/worker/lifecycle.py): every job ends here.
    sql = (f'UPDATE "{Job._meta.db_table}" SET status = %(status)s, error = %(error)s, '
           f"total_cost = ({TASKS_COST_SQL}), finished_at = %(now)s, heartbeat_at = %(now)s "
           "WHERE id = %(id)s AND status = ANY(%(from_statuses)s)"
           + (" AND attempts = %(attempt)s" if attempt is not None else ""))
    params = {"status": status, "error": error, "now": now, "id": job_id, "from_statuses": list(from_statuses),
              "attempt": attempt}

    if callback_url == "":
        return bool(execute_sql(sql, params))  # no webhook to schedule with it: one statement is atomic
    with transaction.atomic():
        changed = execute_sql(sql, params)
        if changed:
            with_callback = Job.objects.filter(id=job_id).exclude(callback_url="").first()
            if with_callback is not None:
                webhook_schedule(job=with_callback)
    return bool(changed)


def _stop_running(job_id: uuid.UUID | str) -> None:
    """Ask the worker running this job to stop it (RQ's stop-job command: the default worker stops that job's
    slot, the forking worker kills its work horse); best effort."""
    try:
        send_stop_job_command(rq_connection(), str(job_id))
    except (InvalidJobOperation, NoSuchJobError, RedisError) as exc:
        # Not executing in RQ (worker gone, job between claim and start): the horse, if any,
        # sees cancel_requested before each task and the row is final already.
        logger.info("stop command for job %s not sent (%s)", job_id, type(exc).__name__)


def _forget_rq_job(job_id: uuid.UUID | str) -> None:
    try:
        remove_rq_job(job_id=job_id)
    except RedisError as exc:
        logger.warning("could not remove RQ job %s (%s)", job_id, type(exc).__name__)


# --- control: cancel, retry, delete ----------------------------------------------------

def job_cancel(*, job: Job) -> Job:
    """Cancel a job. Queued: it leaves the queue. Started: the worker is told to stop (the tasks that
    finished keep their results). Already final: Conflict."""
    job_id = job.id
    if job_finalize_row(job_id=job_id, status=Job.Status.CANCELED, error=CANCELED_MESSAGE,
                        from_statuses=(Job.Status.QUEUED,)):
        Job.objects.filter(id=job_id).update(cancel_requested=True)
        _forget_rq_job(job_id)
    else:
        # cancel_requested first: a horse that has not been killed yet starts no new task.
        if not Job.objects.filter(id=job_id, status=Job.Status.STARTED).update(cancel_requested=True):
            current = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
            if current is None:
                raise NotFoundError("No such job.")  # deleted by a concurrent request
            raise Conflict(f"The job is already {current}; it cannot be canceled.")
        # Final at once, so the answer says canceled; calls in flight when the horse is killed
        # are counted as lost by its worker (jobs.worker.lifecycle.job_settle_after_run).
        job_finalize_row(job_id=job_id, status=Job.Status.CANCELED, error=CANCELED_MESSAGE,
                         from_statuses=(Job.Status.STARTED,))
        _stop_running(job_id)
    # A concurrent DELETE meanwhile: Job.DoesNotExist, which the API answers as 404.
    job.refresh_from_db()
    logger.info("job canceled", extra={"job_id": str(job_id)})
    return job


def job_retry(*, job: Job) -> Job:
    """Run a failed or canceled job again, or a finished one with failed (or not run) tasks:
    only the tasks without a result run; the others keep theirs. Otherwise Conflict."""
    with transaction.atomic():
        # The transcript before the job, in the order its deletion takes them (transcripts.services.
        # transcript_delete, then jobs.models.keep_results_without_transcript): the job is not re-queued
        # while its transcript is being deleted.
        if job.transcript_ref_id is not None:
            transcript_hold(owner=job.owner, transcript_id=job.transcript_ref_id)
        locked = Job.objects.select_for_update().get(id=job.id)
        if locked.transcript_deleted:
            raise Conflict(TRANSCRIPT_GONE)
        unfinished = locked.tasks.exclude(status=Task.Status.SUCCEEDED)
        if locked.status not in (Job.Status.FAILED, Job.Status.CANCELED, Job.Status.FINISHED):
            raise Conflict(f"The job is {locked.status}; only a failed, canceled or finished job can be retried.")
        if not unfinished.exists():
            raise Conflict("Every task of this job already has a result; there is nothing to retry.")
        unfinished.update(status=Task.Status.PENDING, error="", started_at=None, finished_at=None)
        Job.objects.filter(id=locked.id).update(
            status=Job.Status.QUEUED, cancel_requested=False, error="", started_at=None, finished_at=None,
            heartbeat_at=None, calls_in_flight=0, attempts_base=F("attempts"), worker="",
        )
        job_id = locked.id
        transaction.on_commit(lambda: job_enqueue(job_id=job_id))
    job.refresh_from_db()
    logger.info("job retried", extra={"job_id": str(job.id)})
    return job


def job_delete(*, job: Job) -> None:
    """Delete a job with its transcript, tasks, results and webhook deliveries, stopping it first if it runs.

    The spend ledger (accounts) keeps what was billed: money spent is history, not job data.
    """
    job_id = job.id
    if Job.objects.filter(id=job_id, status=Job.Status.STARTED).update(cancel_requested=True):
        _stop_running(job_id)
    Job.objects.filter(id=job_id).delete()
    _forget_rq_job(job_id)
    logger.info("job deleted", extra={"job_id": str(job_id)})


def jobs_purge_expired(*, now=None, batch: int = 500) -> int:
    """Delete final jobs older than JOB_RETENTION_DAYS (0: keep forever). Returns how many."""
    if settings.JOB_RETENTION_DAYS <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=settings.JOB_RETENTION_DAYS)
    ids = list(Job.objects.filter(status__in=Job.FINAL_STATUSES, created_at__lt=cutoff)
               .values_list("id", flat=True)[:batch])
    if ids:
        Job.objects.filter(id__in=ids).delete()
    return len(ids)


# --- Share links of the report page (jobs/sharing.py) ------------------------------------------------

def job_share_create(*, job: Job) -> Job:
    """A read-only link to the job's report for SHARE_LINK_DAYS, under the job's share nonce (made on the first
    share). Links made earlier keep working until their own end; `job_share_revoke` ends them all."""
    expires_at = expiry_timestamp(timezone.now() + timedelta(days=settings.SHARE_LINK_DAYS))
    with transaction.atomic():
        # Locked: two first shares at once must not each make a nonce (the first link would die at once).
        nonce = Job.objects.select_for_update().filter(pk=job.pk).values_list("share_nonce", flat=True).first()
        if nonce is None:
            raise NotFoundError("No such job.")
        nonce = nonce or new_nonce()
        Job.objects.filter(pk=job.pk).update(share_nonce=nonce, share_expires_at=expires_at)
    job.share_nonce, job.share_expires_at = nonce, expires_at
    return job


def job_share_revoke(*, job: Job) -> None:
    """Every share link of the job stops working: a new nonce, which no link was signed with."""
    Job.objects.filter(pk=job.pk).update(share_nonce=new_nonce(), share_expires_at=None)

