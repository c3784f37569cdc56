"""A job end to end: API → PostgreSQL → Redis → a real RQ worker → provider SDK over HTTP → results."""

from __future__ import annotations

import pytest

from tests.conftest import run_manage, transcript, work_burst, worker_env

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.pgbouncer]

SEED_TASKS = {"summary": "Provide a brief summary", "key_points": "Extract key points"}
MODELS = [("gemini", "gemini-2.5-flash"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]


def submit(client, provider: str, model: str, text: str | None = None) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": text or transcript("TS3010a.txt"), "provider": provider, "model": model, "tasks": SEED_TASKS,
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


@pytest.mark.parametrize("provider,model", MODELS)
def test_job_finishes_with_results_for_every_task(alice_client, emulator, provider, model):
    job_id = submit(alice_client, provider, model)
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"

    work_burst()

    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished", data
    assert data["attempts"] == 1 and data["error"] is None
    assert data["progress"] == {"tasks_done": 2, "tasks_total": 2}
    results = data["result"]["results"]
    assert list(results) == ["summary", "key_points"]
    # The emulator answers about the instruction it received: each task got its own prompt.
    assert "Provide a brief summary" in results["summary"]
    assert "Extract key points" in results["key_points"]
    metadata = data["result"]["metadata"]
    assert metadata["provider"] == provider and metadata["model"] == model
    assert isinstance(metadata["total_cost"], float) and metadata["total_cost"] > 0
    assert set(metadata["tasks"]) == {"summary", "key_points"}
    assert metadata["usage"]["input_tokens"] > 1000  # the whole transcript was read
    requests = [r for r in emulator.requests() if r["provider"] == provider]
    assert len(requests) == 2
    assert all("Project Manager" in str(r["body"]) for r in requests)


def test_results_are_read_from_postgresql_after_redis_flushall(alice_client, clean_redis):
    job_id = submit(alice_client, "openai", "gpt-4o-mini")
    work_burst()
    before = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    clean_redis.flushdb()
    after = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert after == before
    assert after["status"] == "finished" and set(after["result"]["results"]) == {"summary", "key_points"}


@pytest.mark.subprocess
def test_rqworker_command_runs_jobs_highest_queue_first(alice_client, emulator):
    """The documented command, as a subprocess, with one slot: jobs run one after another in the order
    taken (with more slots both would start at once, in threads that may claim in either order)."""
    from jobs.models import Job

    low = submit(alice_client, "anthropic", "claude-haiku-4-5")
    high = submit(alice_client, "anthropic", "claude-haiku-4-5")
    Job.objects.filter(id=low).update(queue="low")
    Job.objects.filter(id=high).update(queue="high")
    # Re-enqueue on the queues just assigned (the API already enqueued them on `default`).
    from jobs.services import job_enqueue

    job_enqueue(job_id=low)
    job_enqueue(job_id=high)

    result = run_manage("rqworker", "high", "default", "low", "--burst",
                        env=worker_env(emulator, WORKER_CONCURRENCY="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    low_job, high_job = Job.objects.get(id=low), Job.objects.get(id=high)
    assert (low_job.status, high_job.status) == ("finished", "finished"), result.stderr[-3000:]
    assert high_job.started_at < low_job.started_at


def test_rq_suspend_holds_new_jobs_until_rq_resume(alice_client, emulator, clean_redis):
    from rq.suspension import resume, suspend

    job_id = submit(alice_client, "openai", "gpt-4o-mini")
    suspend(clean_redis)  # what `rq suspend` does
    work_burst()  # a suspended worker in burst mode takes nothing and exits, as RQ's own does
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued"
    assert emulator.requests() == []

    resume(clean_redis)
    work_burst()
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished"
