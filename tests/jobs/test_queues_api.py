"""GET /api/v1/queues: staff only; per-queue counts from Redis, and the workers alive with what they run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from emulator.server import faults
from tests.conftest import PROCESS_WAIT, ROOT, client_for, make_user, transcript, use_redis_url, wait_for, worker_env
from tests.ops.test_healthz import free_port

TASKS = {"summary": "Provide a brief summary"}


@pytest.fixture
def staff_client(db):
    return client_for(make_user("operator", is_staff=True))


def submit(client) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini", "tasks": TASKS,
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


@pytest.mark.django_db(transaction=True)  # the API enqueues on commit
def test_counts_per_queue_and_the_age_of_the_oldest_job(staff_client, alice_client):
    before = time.time()
    submit(alice_client)
    submit(alice_client)
    response = staff_client.get("/api/v1/queues")
    after = time.time()
    assert response.status_code == 200, response.content
    data = response.json()
    queues = {q["name"]: q for q in data["queues"]}
    assert list(queues) == ["high", "default", "low"]
    assert queues["default"]["queued"] == 2
    assert queues["default"]["started"] == 0 and queues["default"]["failed"] == 0
    # The oldest job was enqueued after `before` and its age read before `after` (and rounded to 1 ms).
    assert 0 <= queues["default"]["oldest_queued_age_s"] <= after - before + 0.001
    assert queues["high"]["queued"] == 0 and queues["high"]["oldest_queued_age_s"] is None
    assert data["workers"] == [] and data["workers_alive"] == 0


def test_staff_only(alice_client, client, db):
    response = alice_client.get("/api/v1/queues")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert client.get("/api/v1/queues").status_code == 401


def test_redis_down_is_a_503_in_the_error_shape(staff_client, settings):
    use_redis_url(settings, f"redis://127.0.0.1:{free_port()}/0")
    response = staff_client.get("/api/v1/queues/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_shows_a_live_worker_and_the_job_it_runs(staff_client, alice_client, emulator, client):
    # The provider takes 10 s to answer: long enough to see the worker busy with this job even when each
    # look at the queues is slow (a loaded machine), whenever the worker gets to start.
    emulator.add_faults([faults.delay(10, "openai")])
    job_id = submit(alice_client)
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "rqworker", "high", "default", "low"],
        cwd=ROOT, env=worker_env(emulator), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def worker_running_the_job():
            # The registries and the workers are separate reads of Redis: a response read while the worker
            # writes its start records can show one without the other, so wait for a response with both.
            data = staff_client.get("/api/v1/queues").json()
            busy = next((w for w in data["workers"] if (w["current_job"] or {}).get("job_id") == job_id), None)
            started = {q["name"]: q["started"] for q in data["queues"]}["default"]
            return (busy, data) if busy is not None and started else None

        busy, data = wait_for(worker_running_the_job, PROCESS_WAIT, f"a worker showing job {job_id} as started",
                              interval=0.2)
        assert busy["state"] == "busy" and busy["alive"] is True
        assert busy["queues"] == ["high", "default", "low"]
        assert busy["pid"] == worker.pid
        assert busy["current_job"]["owner"] == "alice"
        assert busy["current_job"]["provider"] == "openai" and busy["current_job"]["model"] == "gpt-4o-mini"
        assert data["workers_alive"] == 1
        assert {q["name"]: q["started"] for q in data["queues"]}["default"] == 1

        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["checks"]["workers"]["busy"] == 1

        wait_for(lambda: alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished", PROCESS_WAIT,
                 "the job to finish", interval=0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    # A worker that said goodbye is gone from the list at once.
    assert staff_client.get("/api/v1/queues").json()["workers"] == []
