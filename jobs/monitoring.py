"""What operators see of the queues and the jobs: queue statistics, workers, and
the Prometheus collector behind `/metrics`.

Every figure is computed when it is asked for, from PostgreSQL (the truth about
jobs, tokens and money) and Redis (the queues and the worker registrations).
Nothing is counted in process memory: work horses are forked and die, and
workers run on many machines, so an in-process counter would only ever see a
sliver of the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db import connection as db_connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from rq import Queue, Worker
from rq.job import Job as RQJob

from analysis.analyze import provider_health
from analysis.engine.health import STATES as HEALTH_STATES
from analysis.engine.providers.usage import USAGE_KEYS
from jobs.models import Job, Task
from scriptripper.monitoring import redis_connection

# Upper bounds (seconds) of the duration histograms: an LLM call takes seconds,
# a long transcript with many chunked tasks can take many minutes.
DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)



# --- Queues and workers ------------------------------------------------------------


# The RQ registries counted in a queue's statistics, besides the queue itself (`queue.<name>_job_registry`).
QUEUE_REGISTRIES: tuple[str, ...] = ("started", "failed", "scheduled", "deferred")


class QueueStats(TypedDict):
    name: str
    queued: int
    started: int
    failed: int
    scheduled: int
    deferred: int
    oldest_queued_age_s: float | None


class WorkerInfo(TypedDict):
    name: str
    hostname: str | None
    pid: int | None
    state: str
    queues: list[str]
    current_job_ids: list[str]  # every job the worker runs (one per slot in use)
    slots: int  # jobs it can hold at once (WORKER_CONCURRENCY; 1 for a forking worker)
    slots_busy: int
    last_heartbeat: datetime | None
    birth_date: datetime | None
    successful_job_count: int
    failed_job_count: int


def queue_stats(connection: Redis) -> list[QueueStats]:
    """Counts per queue, read straight from Redis.

    Registry counts use `cleanup=False`: cleaning a registry moves expired jobs
    around, and a read-only dashboard must not race the workers doing that.
    """
    now = timezone.now()
    stats: list[QueueStats] = []
    for name in settings.RQ_QUEUE_NAMES:
        queue = Queue(name, connection=connection)
        oldest_age = None
        # RQ pushes on the right and pops on the left: index 0 waited longest.
        head = queue.get_job_ids(0, 1)
        if head:
            rq_job = RQJob.fetch_many(head, connection=connection)[0]
            if rq_job is not None and rq_job.enqueued_at is not None:
                enqueued_at = rq_job.enqueued_at
                if timezone.is_naive(enqueued_at):  # RQ stores UTC without a zone
                    enqueued_at = timezone.make_aware(enqueued_at, UTC)
                oldest_age = max(0.0, (now - enqueued_at).total_seconds())
        registries = {registry: getattr(queue, f"{registry}_job_registry").get_job_count(cleanup=False)
                      for registry in QUEUE_REGISTRIES}
        stats.append({  # type: ignore[typeddict-item]
            "name": name,
            "queued": queue.count,
            **registries,
            "oldest_queued_age_s": None if oldest_age is None else round(oldest_age, 3),
        })
    return stats


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def workers_info(connection: Redis) -> list[WorkerInfo]:
    """The workers registered in Redis (on any machine), and what each one runs.

    A worker's registration expires when it stops heartbeating, so a worker
    that died without saying goodbye drops out of this list by itself.
    """
    infos: list[WorkerInfo] = []
    for worker in Worker.all(connection=connection):
        current = sorted({execution.job_id for execution in worker.get_current_executions()})
        slots_raw, busy_raw = connection.hmget(worker.key, "slots", "slots_busy")
        slots = int(slots_raw) if slots_raw else 1  # RQ's own classes run one job at a time
        infos.append({
            "name": worker.name,
            "hostname": worker.hostname,
            "pid": worker.pid,
            "state": str(worker.get_state()),
            "queues": worker.queue_names(),
            "current_job_ids": current,
            "slots": slots,
            "slots_busy": int(busy_raw) if busy_raw else len(current),
            "last_heartbeat": _aware(worker.last_heartbeat),
            "birth_date": _aware(worker.birth_date),
            "successful_job_count": worker.successful_job_count,
            "failed_job_count": worker.failed_job_count,
        })
    infos.sort(key=lambda info: info["name"])
    return infos


def workers_alive(workers: list[WorkerInfo], *, max_age_s: float | None = None) -> list[WorkerInfo]:
    """Workers whose last heartbeat is recent enough.

    An idle RQ worker heartbeats only when its blocking dequeue times out
    (worker_ttl - 15 s, about 405 s by default), so "recent" must allow for that.
    """
    max_age_s = settings.HEALTHZ_WORKER_MAX_AGE_SECONDS if max_age_s is None else max_age_s
    cutoff = timezone.now() - timedelta(seconds=max_age_s)
    return [w for w in workers if w["last_heartbeat"] is not None and w["last_heartbeat"] >= cutoff]


# --- Fallbacks ------------------------------------------------------------------------

# Each move of a task along its chain: from the entry of fallback_from to the next entry, or to the model the task
# ended on after the last one. Counted in PostgreSQL (jsonb), one row per (from, to, reason).
FALLBACKS_SQL = f"""
SELECT f.value->>'provider', f.value->>'model',
       COALESCE(t.fallback_from->(f.n::int)->>'provider', t.provider),
       COALESCE(t.fallback_from->(f.n::int)->>'model', t.model),
       f.value->>'reason', count(*)
FROM "{Task._meta.db_table}" t CROSS JOIN LATERAL jsonb_array_elements(t.fallback_from) WITH ORDINALITY AS f(value, n)
WHERE t.fallback_from <> '[]'::jsonb
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"""


def model_fallbacks() -> list[tuple[str, str, str, str, str, int]]:
    """(from provider, from model, to provider, to model, reason, tasks) over every task row."""
    with db_connection.cursor() as cursor:
        cursor.execute(FALLBACKS_SQL)
        return cursor.fetchall()


# --- The Prometheus collector ------------------------------------------------------


@dataclass
class _Histogram:
    buckets: list[int]
    count: int
    total: float


def _duration_histogram(rows: Iterator[dict]) -> dict[tuple[str, ...], _Histogram]:
    """Group rows of (labels..., le_0..le_n, n, total) aggregates into histograms."""
    out: dict[tuple[str, ...], _Histogram] = {}
    for row in rows:
        labels = row.pop("_labels")
        out[labels] = _Histogram(
            buckets=[row[f"le_{i}"] for i in range(len(DURATION_BUCKETS))],
            count=row["n"],
            total=row["total"].total_seconds() if row["total"] is not None else 0.0,
        )
    return out


def _bucket_aggregates(duration_field: str) -> dict:
    """COUNT(*) FILTER (WHERE duration <= le) for every bucket, plus count and sum, in one query."""
    aggregates = {
        f"le_{i}": Count("pk", filter=Q(**{f"{duration_field}__lte": timedelta(seconds=le)}))
        for i, le in enumerate(DURATION_BUCKETS)
    }
    aggregates["n"] = Count("pk")
    aggregates["total"] = Sum(duration_field)
    return aggregates


def _histogram_metric(name: str, documentation: str, labelnames: list[str],
                      histograms: dict[tuple[str, ...], _Histogram]) -> HistogramMetricFamily:
    metric = HistogramMetricFamily(name, documentation, labels=labelnames)
    for labels, hist in sorted(histograms.items()):
        buckets = [(repr(le), float(count)) for le, count in zip(DURATION_BUCKETS, hist.buckets)]
        buckets.append(("+Inf", float(hist.count)))
        metric.add_metric(list(labels), buckets, hist.total)
    return metric


class ScriptRipperCollector(Collector):
    """Computes every `scriptripper_*` metric at scrape time.

    A part whose source is down (PostgreSQL or Redis) is left out and reported
    by `scriptripper_source_up{source=...} 0`, so a scrape still answers and
    the outage itself is visible.
    """

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("scriptripper_source_up",
                               "1 if the data source answered during this scrape, 0 if not.", labels=["source"])
        try:
            yield from self._database_metrics()
            up.add_metric(["database"], 1)
        except Exception:  # noqa: BLE001 — a scrape must answer even when the database does not
            up.add_metric(["database"], 0)
        try:
            yield from self._redis_metrics()
            up.add_metric(["redis"], 1)
        except Exception:  # noqa: BLE001 — likewise for Redis
            up.add_metric(["redis"], 0)
        yield up

    # PostgreSQL ---------------------------------------------------------------------
    def _database_metrics(self) -> Iterator[Metric]:
        # Everything is built first and yielded at the end, so a database error
        # half-way leaves out the whole part instead of emitting half of it.
        metrics: list[Metric] = []

        jobs = GaugeMetricFamily("scriptripper_jobs", "Jobs in the database, by status and queue.",
                                 labels=["status", "queue"])
        counts = {(row["status"], row["queue"]): row["n"]
                  for row in Job.objects.order_by().values("status", "queue").annotate(n=Count("pk"))}
        queues = sorted(set(settings.RQ_QUEUE_NAMES) | {queue for _, queue in counts})
        for status in Job.Status.values:
            for queue in queues:
                jobs.add_metric([status, queue], counts.get((status, queue), 0))
        metrics.append(jobs)

        window = settings.METRICS_WINDOW_SECONDS
        since = timezone.now() - timedelta(seconds=window)
        window_text = f"{window // 3600} h" if window % 3600 == 0 else f"{window} s"

        job_rows = (
            Job.objects.order_by()
            .filter(finished_at__gte=since, started_at__isnull=False)
            .annotate(duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
            .values("queue", "status")
            .annotate(**_bucket_aggregates("duration"))
        )
        job_hists = _duration_histogram(
            {**row, "_labels": (row["queue"], row["status"])} for row in job_rows)
        metrics.append(_histogram_metric(
            "scriptripper_job_duration_seconds",
            f"Run time (started to finished) of the jobs that ended in the last {window_text} "
            f"(METRICS_WINDOW_SECONDS), by queue and final status; a sliding window, not a running total.",
            ["queue", "status"], job_hists))

        task_rows = (
            Task.objects.order_by()
            .filter(finished_at__gte=since, started_at__isnull=False)
            .annotate(duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
            .values("provider", "model", "status")
            .annotate(**_bucket_aggregates("duration"))
        )
        task_hists = _duration_histogram(
            {**row, "_labels": (row["provider"], row["model"], row["status"])} for row in task_rows)
        metrics.append(_histogram_metric(
            "scriptripper_task_duration_seconds",
            f"Run time of the tasks that ended in the last {window_text} (METRICS_WINDOW_SECONDS), "
            f"by the provider and model that answered (or last failed) and outcome; a sliding window, not a running "
            f"total.",
            ["provider", "model", "status"], task_hists))

        # Money and tokens: all-time totals of the task rows, so they only grow
        # (deleting jobs lowers them, which Prometheus treats as a counter reset). By the model that answered each
        # task (its fallback chain's, when its own could not); a task's calls paid on a model it fell back from
        # count with the model that answered.
        usage_rows = (
            Task.objects.order_by()
            .values("provider", "model")
            .annotate(cost=Sum("cost"), **{field: Sum(field) for field in USAGE_KEYS},
                      done=Count("pk", filter=~Q(status=Task.Status.PENDING)),
                      succeeded=Count("pk", filter=Q(status=Task.Status.SUCCEEDED)),
                      failed=Count("pk", filter=Q(status=Task.Status.FAILED)),
                      provider_calls=Sum("tries"))
        )
        tokens = CounterMetricFamily("scriptripper_tokens", "Tokens billed, by provider, model and kind "
                                     "(input excludes cache reads and writes; output excludes reasoning).",
                                     labels=["provider", "model", "kind"])
        cost = CounterMetricFamily("scriptripper_cost_usd", "Cost in USD of all tasks, by provider and model.",
                                   labels=["provider", "model"])
        tasks = CounterMetricFamily("scriptripper_tasks", "Tasks with an outcome, by provider, model and outcome.",
                                    labels=["provider", "model", "status"])
        calls = CounterMetricFamily("scriptripper_provider_calls", "Provider calls made (including retries), "
                                    "by provider and model.", labels=["provider", "model"])
        for row in usage_rows:
            labels = [row["provider"], row["model"]]
            for field in USAGE_KEYS:
                tokens.add_metric([*labels, field.removesuffix("_tokens")], row[field] or 0)
            cost.add_metric(labels, float(row["cost"] or Decimal("0")))
            tasks.add_metric([*labels, "succeeded"], row["succeeded"])
            tasks.add_metric([*labels, "failed"], row["failed"])
            calls.add_metric(labels, row["provider_calls"] or 0)
        metrics += [tokens, cost, tasks, calls]

        errors = CounterMetricFamily(
            "scriptripper_provider_errors",
            "Tasks that failed for good, by provider, model and error kind (rate_limit, server_error, timeout, ...).",
            labels=["provider", "model", "kind"])
        error_counts: dict[tuple[str, str, str], int] = {}
        failed_rows = (Task.objects.order_by().filter(status=Task.Status.FAILED)
                       .values("provider", "model", "error_kind").annotate(n=Count("pk")))
        for row in failed_rows:
            # The kind the provider module classified, stored with the outcome (jobs.worker.lifecycle).
            key = (row["provider"], row["model"], row["error_kind"] or "other")
            error_counts[key] = error_counts.get(key, 0) + row["n"]
        for key, n in sorted(error_counts.items()):
            errors.add_metric(list(key), n)
        metrics.append(errors)

        fallbacks = CounterMetricFamily(
            "scriptripper_model_fallbacks",
            "Tasks moved from one model of their fallback chain to the next, by both models and the error kind "
            "that moved them (all-time, from the task rows).",
            labels=["from_provider", "from_model", "to_provider", "to_model", "reason"])
        for row in model_fallbacks():
            fallbacks.add_metric(list(row[:5]), row[5])
        metrics.append(fallbacks)

        yield from metrics

    # Redis ----------------------------------------------------------------------------
    def _redis_metrics(self) -> Iterator[Metric]:
        connection = redis_connection()
        try:
            stats = queue_stats(connection)
            workers = workers_info(connection)
            health = provider_health(connection).snapshot()
        finally:
            connection.close()

        circuit = GaugeMetricFamily(
            "scriptripper_provider_circuit",
            "Each model's provider health as every worker shares it: 1 for its state now (ok, degraded: failing "
            "lately; open: no request goes to it), 0 for the others. Models never failed are not listed.",
            labels=["provider", "model", "state"])
        for (provider, model), state in sorted(health.items()):
            for name in HEALTH_STATES:
                circuit.add_metric([provider, model, name], 1 if state.state == name else 0)
        yield circuit

        depth = GaugeMetricFamily("scriptripper_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
        registry = GaugeMetricFamily("scriptripper_queue_jobs", "Jobs in each RQ queue's registries "
                                     f"({', '.join(QUEUE_REGISTRIES)}).", labels=["queue", "state"])
        oldest = GaugeMetricFamily("scriptripper_queue_oldest_job_age_seconds",
                                   "How long the job at the head of each queue has waited (0 when empty).",
                                   labels=["queue"])
        for stat in stats:
            depth.add_metric([stat["name"]], stat["queued"])
            for state in QUEUE_REGISTRIES:
                registry.add_metric([stat["name"], state], stat[state])  # type: ignore[literal-required]
            oldest.add_metric([stat["name"]], stat["oldest_queued_age_s"] or 0.0)

        alive = workers_alive(workers)
        workers_metric = GaugeMetricFamily("scriptripper_workers", "RQ workers alive (recent heartbeat), by state.",
                                           labels=["state"])
        by_state: dict[str, int] = {"busy": 0, "idle": 0}
        for worker in alive:
            by_state[worker["state"]] = by_state.get(worker["state"], 0) + 1
        for state, n in sorted(by_state.items()):
            workers_metric.add_metric([state], n)
        slots = GaugeMetricFamily("scriptripper_worker_slots", "Job slots of the workers alive, busy or free.",
                                  labels=["state"])
        busy_slots = sum(w["slots_busy"] for w in alive)
        slots.add_metric(["busy"], busy_slots)
        slots.add_metric(["free"], max(sum(w["slots"] for w in alive) - busy_slots, 0))
        per_queue = GaugeMetricFamily("scriptripper_queue_workers", "RQ workers alive listening on each queue.",
                                      labels=["queue"])
        for name in settings.RQ_QUEUE_NAMES:
            per_queue.add_metric([name], sum(1 for w in alive if name in w["queues"]))
        yield from (depth, registry, oldest, workers_metric, slots, per_queue)
