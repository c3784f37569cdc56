"""Cancel, retry, delete and Idempotency-Key: what a client sees, on the real queue and worker."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from emulator.server import faults
from jobs.models import Job, Task
from tests.conftest import work_burst
from tests.jobs.faults import TEXT, sent, task_prompts

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.pgbouncer]


def body(prompts: dict[str, str] | None = None, **extra) -> dict:
    return {"transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini",
            "tasks": prompts or task_prompts("ctl", 2), "reuse": False, **extra}


@pytest.fixture
def submit(alice_client, django_capture_on_commit_callbacks):
    def submit(client=alice_client, data: dict | None = None, **headers) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/jobs/analyze", data or body(), format="json", headers=headers)
        assert response.status_code == 202, response.content
        return response.json()["job_id"]
    return submit


def rq_holds(job_id: str) -> bool:
    return any(job_id in django_rq.get_queue(name).get_job_ids() for name in ("high", "default", "low"))


def test_cancel_a_queued_job_takes_it_off_the_queue(alice_client, submit, emulator):
    job_id = submit()
    assert rq_holds(job_id)
    response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "canceled" and data["job_id"] == job_id and data["error"]
    assert data["finished_at"] is not None and data["result"] is None
    assert not rq_holds(job_id)
    work_burst()
    assert emulator.requests() == []
    assert alice_client.get(f"/api/v1/jobs/{job_id}/").json()["status"] == "canceled"


def test_cancel_a_finished_job_is_a_conflict_and_others_jobs_are_not_found(alice_client, bob_client, submit):
    job_id = submit()
    assert bob_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 404
    work_burst()
    response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished"


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_a_job_deleted_while_being_canceled_or_retried_is_not_found(action, alice_client, submit, monkeypatch):
    # Two clients at once: DELETE lands after the cancel/retry request looked the job up.
    import jobs.api
    from jobs.services import job_delete

    job_id = submit()
    if action == "retry":
        assert alice_client.post(f"/api/v1/jobs/{job_id}/cancel").json()["status"] == "canceled"
    looked_up = jobs.api.owned_job

    def owned_then_deleted(request, job_id):
        job = looked_up(request, job_id)
        job_delete(job=Job.objects.get(id=job.id))  # what the concurrent DELETE does
        return job

    monkeypatch.setattr(jobs.api, "owned_job", owned_then_deleted)
    response = alice_client.post(f"/api/v1/jobs/{job_id}/{action}")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert not Job.objects.filter(id=job_id).exists()


def test_retry_runs_only_the_failed_task_again(alice_client, submit, emulator, django_capture_on_commit_callbacks):
    prompts = task_prompts("retry", 3)
    emulator.add_faults(faults.server_error("openai", match=prompts["t1"], times=-1))
    job_id = submit(data=body(prompts))
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished"
    assert set(data["result"]["results"]) == {"t0", "t2"} and set(data["result"]["errors"]) == {"t1"}
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200  # finished, a task failed
    emulator.reset()
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and data["error"] is None
    assert list(data["result"]["results"]) == ["t0", "t1", "t2"] and data["result"]["errors"] == {}
    assert data["attempts"] == 2
    # After the reset only the retried task reached the provider: t0 and t2 kept their results.
    assert sent(emulator, prompts["t1"]) == 1
    assert sent(emulator, prompts["t0"]) == 0 and sent(emulator, prompts["t2"]) == 0
    again = alice_client.post(f"/api/v1/jobs/{job_id}/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_retry_answers_the_job_queued_in_the_get_shape(alice_client, submit, emulator, django_capture_on_commit_callbacks):
    emulator.add_faults(faults.server_error("openai", times=-1))
    job_id = submit()
    work_burst()
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "failed"
    emulator.reset()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/api/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "queued" and data["error"] is None and data["finished_at"] is None
    assert data["progress"] == {"tasks_done": 0, "tasks_total": 2}
    assert rq_holds(job_id)
    work_burst()
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished"


def test_retry_a_queued_job_is_a_conflict(alice_client, bob_client, submit):
    job_id = submit()
    assert alice_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 409
    assert bob_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 404


def test_delete_removes_the_job_its_transcript_and_results(alice_client, bob_client, submit):
    job_id = submit()
    work_burst()
    assert bob_client.delete(f"/api/v1/jobs/{job_id}").status_code == 404
    response = alice_client.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 204
    assert alice_client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert alice_client.delete(f"/api/v1/jobs/{job_id}/").status_code == 404
    assert not Job.objects.filter(id=job_id).exists() and not Task.objects.filter(job_id=job_id).exists()


def test_delete_a_queued_job_means_it_never_runs(alice_client, submit, emulator):
    job_id = submit()
    assert alice_client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert not rq_holds(job_id)
    work_burst()
    assert emulator.requests() == []


def test_idempotency_key_same_body_returns_the_first_job(alice_client, submit):
    first = submit(**{"Idempotency-Key": "order-42"})
    response = alice_client.post("/api/v1/jobs/analyze", body(), format="json", headers={"Idempotency-Key": "order-42"})
    assert response.status_code == 200
    data = response.json()
    assert data["job_id"] == first and data["status"] == "queued" and "progress" in data
    assert Job.objects.count() == 1


def test_idempotency_key_with_another_body_is_a_conflict(alice_client, submit):
    submit(**{"Idempotency-Key": "order-43"})
    other = body(task_prompts("other", 1))
    response = alice_client.post("/api/v1/jobs/analyze", other, format="json", headers={"Idempotency-Key": "order-43"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    assert Job.objects.count() == 1


def test_idempotency_keys_are_per_user_and_expire(alice_client, bob_client, submit):
    first = submit(**{"Idempotency-Key": "k"})
    bobs = submit(client=bob_client, **{"Idempotency-Key": "k"})
    assert bobs != first
    Job.objects.filter(id=first).update(created_at=timezone.now() - timedelta(hours=25))
    later = submit(**{"Idempotency-Key": "k"})
    assert later != first
    assert Job.objects.filter(owner__username="alice").count() == 2


def test_idempotency_key_too_long_is_a_validation_error(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", body(), format="json", headers={"Idempotency-Key": "x" * 201})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
