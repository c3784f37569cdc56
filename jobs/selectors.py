"""Reads on jobs, and the job document of DESIGN.md (`GET /api/v1/jobs/{id}`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour

from accounts.models import User
from analysis.structured import stored_result
from analysis.turns import speaker_stats
from analysis.providers.usage import USAGE_KEYS
from jobs.models import Job, Task

MONEY = Decimal("0.00000001")


def money(value: Decimal) -> Decimal:
    # Decimal to 8 places; DRF's JSON encoder writes it as a JSON number.
    return (value or Decimal("0")).quantize(MONEY)


def jobs_visible_to(user: User) -> QuerySet[Job]:
    return Job.objects.filter(owner=user)


def job_for_user(*, user: User, job_id) -> Job | None:
    """The job if `user` owns it; None otherwise (the API answers 404, never 403)."""
    try:
        return jobs_visible_to(user).get(id=job_id)
    except (Job.DoesNotExist, ValueError, ValidationError):  # ValidationError: not a UUID (Django's UUIDField)
        return None


def reuse_sources(job: Job) -> dict[str, Job]:
    """For each reused task of `job` (by name), the job whose provider call paid for its answer.

    The worker copies a donor's output (the latest identical succeeded task of the same owner,
    jobs/tasks.py) without recording which; the donor is the latest such task finished before
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


def task_metadata(task: Task) -> dict:
    metadata = {
        "cost": money(task.cost),
        "usage": task.usage_dict(),
        "tries": task.tries,
        "calls": task.calls,
        "chunks": task.chunks,
        "reused": task.reused,
        "truncated": task.truncated,
        "blocked": task.blocked,
        "finish_reason": task.finish_reason,
        "latency_s": None if task.latency_s is None else round(task.latency_s, 3),
        "last_error": task.last_error or None,
        "price_version": task.price_version or None,
        "price_date": task.price_date.isoformat() if task.price_date else None,
    }
    if task.status == Task.Status.SUCCEEDED:
        metadata.update(stored_result(task.prompt, task.output)[1])  # structured tasks: citation counts
    return metadata


def job_document(job: Job, tasks: list[Task] | None = None) -> dict:
    from jobs.batches import batch_summary

    if tasks is None:
        tasks = list(job.tasks.all())
    done = [t for t in tasks if t.status != Task.Status.PENDING]
    result = None
    if done:
        usage = {key: sum(getattr(t, key) for t in tasks) for key in USAGE_KEYS}
        total_cost = sum((t.cost for t in tasks), Decimal("0"))
        metadata = {
            "provider": job.provider,
            "model": job.model,
            "total_cost": money(total_cost),
            "usage": usage,
            "tasks": {t.name: task_metadata(t) for t in tasks if t.status != Task.Status.PENDING or t.tries},
            "lost_calls": job.lost_calls,
        }
        from analysis.providers import endpoints
        from analysis.tasks import price_known

        if not price_known(job.provider, job.model):
            # Accepted under ALLOW_UNLISTED_MODELS, or an endpoint without prices: a zero cost here means
            # "unknown", not "free".
            metadata["price_unknown"] = True
            metadata["note"] = (f"{job.model} has no price configured on endpoint {job.provider}: counted as 0."
                                if job.provider in endpoints() else
                                f"{job.model} is not in the model catalogue: its price is unknown and counted as 0.")
        result = {
            "results": {t.name: stored_result(t.prompt, t.output)[0] for t in tasks
                        if t.status == Task.Status.SUCCEEDED},
            "errors": {t.name: t.error for t in tasks if t.status == Task.Status.FAILED},
            "metadata": metadata,
            # Computed from the transcript, no model call (analysis/turns.py).
            "speakers": speaker_stats(job.transcript),
        }
    return {
        "job_id": str(job.id),
        "status": job.status,
        "queue": job.queue,
        "processing": job.processing,
        "batch": batch_summary(job),  # null unless batch mode: provider batch ids, where its calls are
        "attempts": job.attempts,
        "progress": {"tasks_done": len(done), "tasks_total": len(tasks)},
        "error": job.error or None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": result,
    }


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
    """Set tasks_total, tasks_done and tasks_cost on each job, in one query for the whole page."""
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


def job_summary(job: Job) -> dict:
    """One item of the job list: what a client needs to pick a job, not its content."""
    # A running job's total_cost is only written when it ends; the tasks' sum is live.
    cost = job.total_cost if job.is_final else getattr(job, "tasks_cost", None) or Decimal("0")
    return {
        "job_id": str(job.id),
        "status": job.status,
        "queue": job.queue,
        "provider": job.provider,
        "model": job.model,
        "profile": job.profile_name or None,
        "progress": {"tasks_done": job.tasks_done, "tasks_total": job.tasks_total},
        "total_cost": money(cost),
        "error": job.error or None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


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
    """USD spent per bucket and "provider/model", counted when each task ended (money is spent as tasks end)."""
    trunc = TruncHour if unit == "hour" else TruncDay
    rows = (Task.objects.filter(finished_at__gte=since, cost__gt=0).annotate(bucket=trunc("finished_at"))
            .order_by().values("bucket", "job__provider", "job__model").annotate(usd=Sum("cost")))
    return {(row["bucket"], f"{row['job__provider']}/{row['job__model']}"): row["usd"] for row in rows}


def queue_wait_percentiles(*, since: datetime, unit: str) -> dict[datetime, tuple[float, float, int]]:
    """Per bucket of start time: median and 95th percentile of the seconds jobs waited queued, and how many."""
    from django.db import connection

    # percentile_cont has no ORM aggregate; one GROUP BY in PostgreSQL instead of every row in Python.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT date_trunc('{'hour' if unit == 'hour' else 'day'}', started_at) AS bucket, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), count(*) "
            f"FROM {Job._meta.db_table} WHERE started_at >= %s AND started_at >= created_at GROUP BY bucket",
            [since])
        return {bucket: (float(p50), float(p95), n) for bucket, p50, p95, n in cursor.fetchall()}
