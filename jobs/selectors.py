"""Reads on jobs: one job with its tasks (the job document), the list, reuse sources, the queues, the charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from jobs.models import Job, Task
from jobs.monitoring import queue_stats, workers_alive, workers_info
from jobs.sharing import read_share_token
from scriptripper.errors import ServiceUnavailable
from scriptripper.monitoring import redis_connection


def jobs_visible_to(user: User) -> QuerySet[Job]:
    return Job.objects.filter(owner=user)


def job_for_user(*, user: User, job_id) -> Job | None:
    """The job if `user` owns it; None otherwise (the API answers 404, never 403)."""
    try:
        return jobs_visible_to(user).get(id=job_id)
    except (Job.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID (Django's UUIDField)
        return None


def job_for_share_token(token: str) -> Job | None:
    """The job a share link opens, or None: a token that is not genuine, has expired, or was signed under
    a nonce the job no longer has (revoked), and a job that is gone, all read the same."""
    claim = read_share_token(token, now=timezone.now())
    if claim is None:
        return None
    return Job.objects.filter(id=claim.job_id, share_nonce=claim.nonce).exclude(share_nonce="").first()


def reuse_sources(job: Job) -> dict[str, Job]:
    """For each reused task of `job` (by name), the job whose provider call paid for its answer.

    The worker copies a donor's output (the latest identical succeeded task of the same owner,
    jobs.worker.lifecycle.tasks_reuse_finished) without recording which; the donor is the latest such task finished before
    the copy. A donor that was itself reused leads on to the job that paid.
    """
    sources: dict[str, Job] = {}
    for task in job.tasks.filter(reused=True, status=Task.Status.SUCCEEDED):
        donor, seen = task, {task.pk}
        while donor.reused:
            previous = (Task.objects.filter(reuse_key=donor.reuse_key, status=Task.Status.SUCCEEDED,
                                            job__owner_id=job.owner_id, finished_at__lte=donor.finished_at)
                        .exclude(job_id=donor.job_id).exclude(pk__in=seen).select_related("job")
                        .order_by("-finished_at").first())
            if previous is None or not donor.reuse_key:
                break
            donor = previous
            seen.add(donor.pk)
        if donor.pk != task.pk:
            sources[task.name] = donor.job
    return sources


def jobs_summaries(*, user: User, filters: dict) -> QuerySet[Job]:
    """The caller's jobs for the list endpoint, without the transcript.

    No task counts here: aggregating before the LIMIT would count the tasks of every
    job of the user; `with_task_counts` counts one page's.
    """
    queryset = jobs_visible_to(user).only(
        "id", "status", "queue", "provider", "model", "profile_name", "error", "total_cost",
        "created_at", "started_at", "finished_at")
    for field in ("status", "provider", "model"):
        if filters.get(field):
            queryset = queryset.filter(**{field: filters[field]})
    if filters.get("created_after"):
        queryset = queryset.filter(created_at__gte=filters["created_after"])
    if filters.get("created_before"):
        queryset = queryset.filter(created_at__lt=filters["created_before"])
    return queryset


def with_task_counts(jobs: list[Job]) -> list[Job]:
    """Set tasks_total, tasks_done and tasks_cost on each job (JobSummarySerializer), in one query for the page."""
    counts = {
        row["job_id"]: row
        for row in Task.objects.filter(job_id__in=[job.id for job in jobs]).order_by().values("job_id").annotate(
            total=Count("pk"), done=Count("pk", filter=~Q(status=Task.Status.PENDING)), cost=Sum("cost"))
    }
    for job in jobs:
        row = counts.get(job.id, {})
        job.tasks_total, job.tasks_done = row.get("total", 0), row.get("done", 0)
        job.tasks_cost = row.get("cost") or Decimal("0")
    return jobs


# --- The queues and the workers (GET /api/v1/queues) --------------------------------------------

@dataclass(frozen=True)
class RunningJob:
    job_id: str
    job: Job | None  # None: the row is gone, or the id is not a job's


def queues_overview() -> dict:
    """GET /api/v1/queues (QueuesSerializer): the queues, and the workers with the jobs each one runs."""
    connection = redis_connection()
    try:
        queues = queue_stats(connection)
        workers = workers_info(connection)
    except RedisError as exc:
        raise ServiceUnavailable(f"Redis is unreachable ({type(exc).__name__}).") from None
    finally:
        connection.close()
    alive = {w["name"] for w in workers_alive(workers)}
    running = [job_id for w in workers for job_id in w["current_job_ids"] if _is_uuid(job_id)]
    jobs = {str(job.id): job for job in Job.objects.filter(id__in=running).select_related("owner")
            .only("id", "status", "provider", "model", "started_at", "owner__username")}
    items = []
    for worker in workers:
        current = [RunningJob(job_id, jobs.get(job_id)) for job_id in worker["current_job_ids"]]
        items.append({**worker, "alive": worker["name"] in alive, "current_jobs": current,
                      "current_job": current[0] if current else None})
    return {"queues": queues, "workers": items, "workers_alive": len(alive)}


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


# --- Charts (the admin's charts page): read from the job rows in PostgreSQL -----------------------

CHART_RANGES = {"day": (timedelta(days=1), "hour"), "week": (timedelta(days=7), "day")}


def chart_buckets(*, since: datetime, until: datetime, unit: str) -> list[datetime]:
    """Every bucket start from `since` to `until` (empty buckets are drawn too: a gap is information)."""
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = start.replace(hour=0)
    buckets = []
    while start <= until:
        buckets.append(start)
        start += step
    return buckets


def jobs_per_hour_by_status(*, since: datetime) -> dict[tuple[datetime, str], int]:
    rows = (Job.objects.filter(created_at__gte=since).annotate(bucket=TruncHour("created_at")).order_by()
            .values("bucket", "status").annotate(n=Count("pk")))
    return {(row["bucket"], row["status"]): row["n"] for row in rows}


def spend_by_provider_model(*, since: datetime, unit: str) -> dict[tuple[datetime, str], Decimal]:
    """USD spent per bucket and "provider/model" (the model that answered each task), counted when each task ended
    (money is spent as tasks end)."""
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (Task.objects.filter(finished_at__gte=since, cost__gt=0).annotate(bucket=trunc("finished_at"))
            .order_by().values("bucket", "provider", "model").annotate(usd=Sum("cost")))
    return {(row["bucket"], f"{row['provider']}/{row['model']}"): row["usd"] for row in rows}


def queue_wait_percentiles(*, since: datetime, unit: str) -> dict[datetime, tuple[float, float, int]]:
    """Per bucket of start time: median and 95th percentile of the seconds jobs waited queued, and how many."""
    # percentile_cont has no ORM aggregate; one GROUP BY in PostgreSQL instead of every row in Python.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc('{'hour' if unit == 'hour' else 'day'}', started_at) AS bucket, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), count(*) "
            f"FROM {Job._meta.db_table} WHERE started_at >= %s AND started_at >= created_at GROUP BY bucket",
            [since])
        return {bucket: (float(p50), float(p95), n) for bucket, p50, p95, n in cursor.fetchall()}
