"""The reconciler: the database is the truth and the queue is made to agree with it."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import django_rq
import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job
from jobs.worker.reconcile import jobs_reconcile
from tests.conftest import queues_at, work_burst
from tests.jobs.faults import TEXT, task_prompts

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.pgbouncer]


def submit(client, n: int = 2) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": task_prompts("rec", n),
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def rq_holds(job_id: str) -> bool:
    return any(job_id in django_rq.get_queue(name).get_job_ids() for name in ("high", "default", "low"))


def test_redis_down_at_submit_still_accepts_and_the_reconciler_enqueues_later(alice_client, settings):
    reachable = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0")
    job_id = submit(alice_client)  # 202 although nothing could be enqueued
    assert Job.objects.get(id=job_id).status == "queued"
    settings.RQ_QUEUES = reachable
    assert not rq_holds(job_id)
    report = jobs_reconcile()
    assert report.reenqueued == 1 and rq_holds(job_id)
    assert jobs_reconcile().reenqueued == 0  # held now: not enqueued twice
    work_burst()
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished"


def test_queued_jobs_lost_by_a_flushall_are_enqueued_again(alice_client, clean_redis):
    ids = [submit(alice_client) for _ in range(3)]
    clean_redis.flushdb()
    assert jobs_reconcile().reenqueued == 3
    work_burst()
    assert set(Job.objects.filter(id__in=ids).values_list("status", flat=True)) == {"finished"}


def test_held_jobs_are_found_under_rqs_own_job_key(alice_client, monkeypatch):
    # RQ names job hashes with Job.redis_job_namespace_prefix; a copy of "rq:job:" in the reconciler
    # would see every queued job as lost (and enqueue it again) under any other prefix.
    from rq.job import Job as RQJob

    monkeypatch.setattr(RQJob, "redis_job_namespace_prefix", "sr-test-prefix:job:")
    job_id = submit(alice_client)
    assert django_rq.get_connection("default").exists(f"sr-test-prefix:job:{job_id}")
    assert jobs_reconcile().reenqueued == 0


def test_a_started_job_with_an_expired_lease_is_requeued_and_its_calls_in_flight_counted(alice_client, settings):
    job_id = submit(alice_client)
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS + 5)
    Job.objects.filter(id=job_id).update(status="started", attempts=1, heartbeat_at=stale, calls_in_flight=2)
    assert jobs_reconcile().recovered == {"queued": 1}
    job = Job.objects.get(id=job_id)
    assert job.status == "queued" and job.lost_calls == 2 and job.calls_in_flight == 0
    assert rq_holds(job_id)
    work_burst()
    job.refresh_from_db()
    assert job.status == "finished" and job.attempts == 2


def test_a_fresh_heartbeat_is_left_alone(alice_client):
    job_id = submit(alice_client)
    Job.objects.filter(id=job_id).update(status="started", attempts=1, heartbeat_at=timezone.now())
    assert jobs_reconcile().recovered == {}
    assert Job.objects.get(id=job_id).status == "started"


def test_after_the_maximum_attempts_the_job_fails_with_a_clear_message(alice_client, settings):
    job_id = submit(alice_client)
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS + 5)
    Job.objects.filter(id=job_id).update(status="started", attempts=settings.JOB_MAX_ATTEMPTS, heartbeat_at=stale)
    assert jobs_reconcile().recovered == {"failed": 1}
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "failed" and data["finished_at"]
    assert f"Gave up after {settings.JOB_MAX_ATTEMPTS} attempts" in data["error"]


def test_a_stale_job_that_was_being_canceled_ends_canceled(alice_client, settings):
    job_id = submit(alice_client)
    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS + 5)
    Job.objects.filter(id=job_id).update(status="started", attempts=1, heartbeat_at=stale, cancel_requested=True)
    jobs_reconcile()
    assert Job.objects.get(id=job_id).status == "canceled"


def test_retention_purges_old_final_jobs_only(alice_client, settings):
    old_done, old_queued, recent = submit(alice_client), submit(alice_client), submit(alice_client)
    long_ago = timezone.now() - timedelta(days=settings.JOB_RETENTION_DAYS + 1)
    Job.objects.filter(id=old_done).update(status="finished", created_at=long_ago)
    Job.objects.filter(id=old_queued).update(created_at=long_ago)
    settings.JOB_RETENTION_DAYS = 0
    assert jobs_reconcile().purged == 0
    settings.JOB_RETENTION_DAYS = 30
    assert jobs_reconcile().purged == 1
    assert set(Job.objects.values_list("id", flat=True).filter(id__in=[old_done, old_queued, recent])) == {
        Job.objects.get(id=old_queued).id, Job.objects.get(id=recent).id}


def test_reconcile_jobs_command_runs_one_pass(alice_client, clean_redis, capsys):
    job_id = submit(alice_client)
    clean_redis.flushdb()
    call_command("reconcile_jobs")
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["reenqueued"] == 1 and rq_holds(job_id)


def test_a_queued_row_left_in_rqs_started_registry_by_a_dead_run_is_enqueued_again(alice_client, clean_redis):
    job_id = submit(alice_client)
    queue = django_rq.get_queue("default")
    queue.remove(job_id)
    clean_redis.zadd(queue.started_job_registry.key, {f"{job_id}:exec1": time.time() + 3600})
    clean_redis.hset(f"rq:job:{job_id}", mapping={"status": "started", "started_at": "2026-01-01T00:00:00.000000Z"})
    assert jobs_reconcile().reenqueued == 1
    assert rq_holds(job_id) and clean_redis.zcard(queue.started_job_registry.key) == 0
    work_burst()
    assert Job.objects.get(id=job_id).status == "finished"
