"""GET /api/v1/jobs: the caller's own jobs, newest first, cursor-paginated, filterable, without transcripts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from analysis.engine.planning import TaskSpec
from jobs.models import Job, Task
from jobs.services import JobRequest, job_create
from tests.conftest import work_burst

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]

SECRET_TRANSCRIPT = "Alice: the launch code is swordfish.\nBob: noted."


def make_job(owner, *, provider="openai", model="gpt-4o-mini", created_ago: float = 0, status: str | None = None) -> Job:
    job = job_create(owner=owner, request=JobRequest(
        provider=provider, model=model, transcript=SECRET_TRANSCRIPT,
        tasks=[TaskSpec(name="summary", prompt="Provide a brief summary"), TaskSpec(name="topics", prompt="List topics")],
    ))
    updates = {"created_at": timezone.now() - timedelta(seconds=created_ago)}
    if status:
        updates["status"] = status
    Job.objects.filter(id=job.id).update(**updates)
    job.refresh_from_db()
    return job


def test_lists_only_the_callers_jobs_newest_first_without_transcripts(alice, bob, alice_client, bob_client):
    old = make_job(alice, created_ago=300)
    new = make_job(alice, created_ago=10)
    make_job(bob)

    response = alice_client.get("/api/v1/jobs")
    assert response.status_code == 200, response.content
    data = response.json()
    assert [item["job_id"] for item in data["results"]] == [str(new.id), str(old.id)]
    assert data["next"] is None and data["previous"] is None
    item = data["results"][0]
    assert set(item) == {"job_id", "status", "queue", "provider", "model", "profile", "progress", "total_cost",
                         "error", "created_at", "started_at", "finished_at"}
    assert item["status"] == "queued" and item["progress"] == {"tasks_done": 0, "tasks_total": 2}
    assert item["total_cost"] == 0 and isinstance(item["total_cost"], (int, float))
    assert "swordfish" not in response.content.decode()

    # bob sees his one job, never alice's; the trailing slash answers the same.
    bob_data = bob_client.get("/api/v1/jobs/").json()
    assert len(bob_data["results"]) == 1 and str(new.id) not in str(bob_data)


@pytest.mark.django_db(transaction=True)  # the worker closes connections: no test-wide transaction
def test_finished_job_shows_progress_and_cost(alice, alice_client):
    job = make_job(alice)
    work_burst()
    item = alice_client.get("/api/v1/jobs").json()["results"][0]
    job.refresh_from_db()
    assert item["status"] == "finished"
    assert item["progress"] == {"tasks_done": 2, "tasks_total": 2}
    assert item["total_cost"] > 0
    assert Decimal(str(item["total_cost"])) == job.total_cost.quantize(Decimal("0.00000001"))
    assert item["finished_at"] is not None


def test_cursor_pagination_walks_every_job_once(alice, alice_client):
    jobs = [make_job(alice, created_ago=100 - i) for i in range(5)]  # jobs[-1] is the newest
    seen: list[str] = []
    url = "/api/v1/jobs?limit=2"
    pages = 0
    while url:
        response = alice_client.get(url)
        assert response.status_code == 200, response.content
        data = response.json()
        assert len(data["results"]) <= 2
        seen += [item["job_id"] for item in data["results"]]
        url = data["next"]
        pages += 1
    assert pages == 3
    assert seen == [str(job.id) for job in reversed(jobs)]


def test_a_job_created_while_paging_does_not_shift_the_pages(alice, alice_client):
    jobs = [make_job(alice, created_ago=100 - i) for i in range(4)]
    first = alice_client.get("/api/v1/jobs?limit=2").json()
    make_job(alice)  # newer than everything: must not push a job from page 1 onto page 2
    second = alice_client.get(first["next"]).json()
    assert [item["job_id"] for item in second["results"]] == [str(jobs[1].id), str(jobs[0].id)]


@override_settings(JOBS_PAGE_SIZE=2, JOBS_MAX_PAGE_SIZE=3)
def test_page_size_default_and_maximum(alice, alice_client):
    for i in range(4):
        make_job(alice, created_ago=i)
    assert len(alice_client.get("/api/v1/jobs").json()["results"]) == 2
    assert len(alice_client.get("/api/v1/jobs?limit=100").json()["results"]) == 3


def test_filters(alice, alice_client):
    gemini = make_job(alice, provider="gemini", model="gemini-2.5-flash", created_ago=3600 * 48)
    openai_failed = make_job(alice, provider="openai", model="gpt-4o-mini", status="failed", created_ago=60)
    anthropic = make_job(alice, provider="anthropic", model="claude-haiku-4-5", created_ago=30)

    def ids(query: str) -> set[str]:
        response = alice_client.get(f"/api/v1/jobs?{query}")
        assert response.status_code == 200, response.content
        return {item["job_id"] for item in response.json()["results"]}

    assert ids("status=failed") == {str(openai_failed.id)}
    assert ids("provider=gemini") == {str(gemini.id)}
    assert ids("model=claude-haiku-4-5") == {str(anthropic.id)}
    day_ago = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"created_after={day_ago.replace('+', '%2B')}") == {str(openai_failed.id), str(anthropic.id)}
    assert ids(f"created_before={day_ago.replace('+', '%2B')}") == {str(gemini.id)}
    assert ids("status=queued&provider=anthropic") == {str(anthropic.id)}


@pytest.mark.parametrize("query,field", [
    ("status=done", "status"),
    ("provider=mistral", "provider"),
    ("created_after=yesterday", "created_after"),
    ("created_before=2026-13-45", "created_before"),
    ("created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z", "created_before"),
    ("cursor=not-a-cursor", "cursor"),
])
def test_bad_filter_values_are_a_400(alice_client, query, field):
    response = alice_client.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"]


def test_requires_a_token(client, db):
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_list_does_not_collide_with_the_other_job_routes(alice, alice_client):
    job = make_job(alice)
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["job_id"] == str(job.id)
    assert alice_client.get("/api/v1/jobs/analyze").status_code == 405  # POST only, not the list
    assert alice_client.post("/api/v1/jobs", {}, format="json").status_code == 405
    assert Task.objects.filter(job=job).count() == 2
