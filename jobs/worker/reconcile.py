"""The reconciler: makes the queue agree with the database, which is the truth.

Runs every RECONCILE_INTERVAL_SECONDS in a thread of every worker parent
(ScriptRipperWorker), one worker at a time (a Redis lock with a TTL, so a
SIGKILLed holder cannot block the others), and on demand with
`python manage.py reconcile_jobs`. One pass:

1. `started` rows whose heartbeat is older than JOB_LEASE_SECONDS (worker
   gone, machine lost) go back to `queued`, or `failed` after JOB_MAX_ATTEMPTS;
   calls that were in flight are counted as lost. A row whose worker still
   heartbeats in Redis is left alone: its leases only stopped because
   PostgreSQL was away, and its answers are waiting to be stored.
2. `queued` rows Redis does not hold (FLUSHALL, restart, eviction, Redis down
   at submit time) are enqueued again, after the stale RQ entries are removed.
3. Final jobs older than JOB_RETENTION_DAYS are deleted.
4. Webhook deliveries that are due are tried.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError
from rq.job import Job as RQJob
from rq.worker import Worker

from jobs.models import Job
from jobs.queues import rq_connection, rq_queue, started_registry_entries
from jobs.services import job_enqueue, jobs_purge_expired
from jobs.webhooks import webhooks_deliver_due
from jobs.worker.dbpool import DatabasePool
from jobs.worker.lifecycle import job_recover
from jobs.worker.periodic import PeriodicPass
from jobs.worker.provider_limits import provider_limiter

logger = logging.getLogger(__name__)

LOCK_KEY = "scriptripper:reconcile:lock"


@dataclass
class ReconcileReport:
    recovered: dict[str, int] = field(default_factory=dict)  # new status → count, for stale started rows
    reenqueued: int = 0
    purged: int = 0
    webhooks_tried: int = 0
    redis_ok: bool = True
    leases_released: int = 0  # provider request slots dead workers held

    def as_dict(self) -> dict:
        return asdict(self)


def rq_held_job_ids(redis) -> set[str]:
    """Ids of the jobs RQ holds: waiting in a queue (with their job hash) or being executed."""
    held: set[str] = set()
    for name in settings.RQ_QUEUE_NAMES:
        queue = rq_queue(name)
        waiting = [raw.decode() for raw in redis.lrange(queue.key, 0, -1)]
        waiting += [raw.decode() for raw in redis.lrange(queue.intermediate_queue_key, 0, -1)]
        if waiting:
            # An evicted job hash with its id still listed would be skipped by workers forever.
            with redis.pipeline(transaction=False) as pipe:
                for job_id in waiting:
                    pipe.exists(RQJob.key_for(job_id))  # RQ's own key scheme, not a copy of it
                exists = pipe.execute()
            held.update(job_id for job_id, ok in zip(waiting, exists) if ok)
        # Being executed: a worker dequeued it and its horse is about to claim the row. Only
        # for a moment: a row still `queued` long after RQ started it is a dead run's leftover.
        for job_id, _ in started_registry_entries(queue, redis):
            status, started_at = redis.hmget(RQJob.key_for(job_id), "status", "started_at")
            if status == b"started" and started_at and _age_s(started_at.decode()) < STARTING_GRACE_S:
                held.add(job_id)
    return held


STARTING_GRACE_S = 30.0


def _age_s(rq_timestamp: str) -> float:
    try:
        started = datetime.fromisoformat(rq_timestamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if started.tzinfo is None:
        started = started.replace(tzinfo=dt_timezone.utc)
    return (timezone.now() - started).total_seconds()


def provider_leases_release(*, workers: set[str]) -> int:
    """Give back the provider request slots that dead workers held (their calls died with them), so the jobs
    recovered from them find the slots free rather than waiting for the leases to expire."""
    limiter = provider_limiter()
    try:
        return sum(limiter.release_holder(worker) for worker in workers)
    except RedisError as exc:  # the leases expire by themselves
        logger.warning("reconcile: dead workers' provider leases not released (%s)", type(exc).__name__)
        return 0


def jobs_reconcile(*, now=None) -> ReconcileReport:
    report = ReconcileReport()
    now = now or timezone.now()

    stale_before = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    # A batch job waiting for its provider batches has no worker and no lease: not a dead job (jobs/worker/provider_batch_poller.py).
    stale = list(Job.objects.filter(status=Job.Status.STARTED, heartbeat_at__lt=stale_before, awaiting_batch=False)
                 .values_list("id", "worker"))
    alive = workers_heartbeating({worker for _, worker in stale if worker})
    dead = {worker for _, worker in stale if worker and worker not in alive}
    if dead:
        report.leases_released = provider_leases_release(workers=dead)
    for job_id, worker in stale:
        if worker in alive:
            continue
        status = job_recover(job_id=job_id, stale_before=stale_before,
                             reason=f"its worker stopped sending heartbeats for {settings.JOB_LEASE_SECONDS:g} s.")
        if status:
            report.recovered[status] = report.recovered.get(status, 0) + 1

    try:
        redis = rq_connection()
        queued = [str(i) for i in Job.objects.filter(status=Job.Status.QUEUED).order_by("created_at")
                  .values_list("id", flat=True)]  # oldest first: a flushed backlog keeps its order
        if queued:
            held = rq_held_job_ids(redis)
            for job_id in queued:
                # job_enqueue re-checks `queued` and removes stale RQ entries before enqueueing.
                if job_id not in held and job_enqueue(job_id=job_id):
                    report.reenqueued += 1
    except RedisError as exc:
        report.redis_ok = False
        logger.warning("reconcile: Redis unreachable (%s); queued jobs wait for the next pass", type(exc).__name__)

    report.purged = jobs_purge_expired(now=now)
    report.webhooks_tried = webhooks_deliver_due()
    if report.recovered or report.reenqueued or report.purged:
        logger.info("reconcile: %s", report.as_dict())
    return report


def workers_heartbeating(names: set[str]) -> set[str]:
    """The workers among `names` whose RQ registration has a heartbeat younger than the lease.

    Redis unreachable: none (the database lease alone decides, as it must when Redis is lost).
    """
    if not names:
        return set()
    ordered = sorted(names)
    try:
        with rq_connection().pipeline(transaction=False) as pipe:
            for name in ordered:
                pipe.hget(f"{Worker.redis_worker_namespace_prefix}{name}", "last_heartbeat")
            beats = pipe.execute()
    except RedisError:
        return set()
    alive = set()
    for name, beat in zip(ordered, beats):
        if beat and _age_s(beat.decode()) < settings.JOB_LEASE_SECONDS:
            alive.add(name)
    return alive


class ReconcilerThread(PeriodicPass):
    """The reconciler inside a worker parent, every RECONCILE_INTERVAL_SECONDS, one worker at a time.

    With `db` (the worker's database pool) its passes run there; without (a forking worker's
    parent) on a connection of its own, closed after every pass, so it holds nothing across a
    fork or a PostgreSQL restart. An OperationalError only costs one pass.
    """

    label = "reconciler"
    lock_key = LOCK_KEY

    def __init__(self, *, worker_name: str, db: DatabasePool | None = None) -> None:
        super().__init__(name="scriptripper-reconciler", worker_name=worker_name)
        self.db = db
        self.own_connection = db is None

    def interval(self) -> float:
        return settings.RECONCILE_INTERVAL_SECONDS

    def first_delay(self, interval: float) -> float:
        # First pass soon after start (workers restarted after an outage recover at once),
        # jittered so that workers started together do not race for the lock.
        return random.uniform(0.2, min(2.0, interval))

    def run_pass(self) -> None:
        if self.db is not None:
            self.db.run(jobs_reconcile, tries=1)
        else:
            jobs_reconcile()
