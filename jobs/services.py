"""Writes on jobs: create, enqueue, and the worker-side lifecycle.

The database row is the truth and the queue only delivers: a job row is
created first, and it is enqueued only after the transaction commits, with the
row's UUID as the RQ job id. Only the id travels to the worker.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import django_rq
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from accounts.models import User
from analysis.runner import TaskSpec
from jobs.models import Job, Task

logger = logging.getLogger(__name__)

RUN_JOB_FUNC = "jobs.tasks.run_job"


@dataclass(frozen=True)
class JobRequest:
    """Everything a job needs, validated (by the API serializers, the CLI or a test)."""

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
    queue: str | None = None


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
    queue = request.queue or route_queue(user=owner, transcript_chars=len(request.transcript), kind=request.kind)
    with transaction.atomic():
        job = Job.objects.create(
            owner=owner,
            kind=request.kind,
            queue=queue,
            provider=request.provider,
            model=request.model,
            profile_name=request.profile_name,
            system_prompt=request.system_prompt,
            transcript=request.transcript,
            transcript_format=request.transcript_format,
            params=request.params,
            reuse_results=request.reuse_results,
            max_cost=request.max_cost,
            callback_url=request.callback_url,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        Task.objects.bulk_create(
            Task(job=job, position=position, name=spec.name, prompt=spec.prompt)
            for position, spec in enumerate(request.tasks)
        )
        job_id = job.id
        # After commit, never before: a worker must not be handed an id whose row it cannot see yet.
        transaction.on_commit(lambda: job_enqueue(job_id=job_id))
    logger.info("job created", extra={"job_id": str(job.id), "queue": queue, "tasks": len(request.tasks)})
    return job


def remove_rq_job(*, job_id: uuid.UUID | str, connection=None) -> None:
    """Forget a previous delivery of this job in RQ: the job hash and its registry entries.

    Enqueueing again under the same id while a dead run still sits in RQ's started
    registry lets RQ's own cleanup fail the new run.
    """
    job_id = str(job_id)
    connection = connection or django_rq.get_connection("default")
    for name in settings.RQ_QUEUE_NAMES:
        queue = django_rq.get_queue(name)
        queue.remove(job_id)
        for registry in (queue.started_job_registry, queue.failed_job_registry, queue.finished_job_registry,
                         queue.canceled_job_registry, queue.deferred_job_registry, queue.scheduled_job_registry):
            try:
                registry.remove(job_id)
            except Exception:  # registries differ slightly across RQ versions; removal is best effort
                connection.zrem(registry.key, job_id)
    try:
        RQJob.fetch(job_id, connection=connection).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass


def job_enqueue(*, job_id: uuid.UUID | str) -> bool:
    """Put a queued job on its RQ queue. False when Redis is unreachable: the row
    stays `queued` and the reconciler enqueues it when Redis is back."""
    job = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).only("id", "queue").first()
    if job is None:
        return False
    try:
        queue = django_rq.get_queue(job.queue)
        remove_rq_job(job_id=job.id, connection=queue.connection)
        queue.enqueue_call(
            RUN_JOB_FUNC,
            args=(str(job.id),),
            job_id=str(job.id),
            timeout=settings.JOB_TIMEOUT,
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
        )
    except RedisError as exc:
        logger.warning("could not enqueue job %s (%s); the reconciler will retry", job.id, type(exc).__name__)
        return False
    return True
