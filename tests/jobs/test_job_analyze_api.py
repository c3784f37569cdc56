"""The analyze endpoint's contract: shapes, status codes, validation, no redirects."""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings

from jobs.models import Job
from tests.conftest import assert_error, transcript

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db, pytest.mark.pgbouncer]

SEED_TASKS = {"summary": "Provide a brief summary", "key_points": "Extract key points"}


def body(**overrides):
    data = {"transcript": transcript("TS3010a.txt"), "provider": "gemini", "model": "gemini-2.5-flash",
            "tasks": dict(SEED_TASKS)}
    data.update(overrides)
    return data


@pytest.mark.parametrize("path", ["/api/v1/jobs/analyze", "/api/v1/jobs/analyze/"])
def test_analyze_answers_202_with_the_seed_shape_with_and_without_slash(alice_client, alice, path,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(path, body(), format="json")
    assert response.status_code == 202
    data = response.json()
    assert set(data) == {"job_id", "status", "message"}
    assert data["status"] == "queued" and data["message"] == "Job queued for processing"
    job = Job.objects.get(id=uuid.UUID(data["job_id"]))
    assert job.owner == alice
    assert [t.name for t in job.tasks.all()] == ["summary", "key_points"]


def test_new_job_reads_back_queued_with_the_full_shape(alice_client):
    job_id = alice_client.post("/api/v1/jobs/analyze", body(), format="json").json()["job_id"]
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/"):
        data = alice_client.get(path).json()
        assert set(data) >= {"job_id", "status", "queue", "attempts", "progress", "error", "created_at",
                             "started_at", "finished_at", "result"}
        assert data["status"] == "queued"
        assert data["progress"] == {"tasks_done": 0, "tasks_total": 2}
        assert data["result"] is None and data["error"] is None


def test_another_users_job_is_404(alice_client, bob_client):
    job_id = alice_client.post("/api/v1/jobs/analyze", body(), format="json").json()["job_id"]
    assert_error(bob_client.get(f"/api/v1/jobs/{job_id}"), 404, "not_found")
    assert_error(alice_client.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404, "not_found")


@pytest.mark.parametrize("overrides,field", [
    ({"transcript": ""}, "transcript"),
    ({"transcript": "   \n "}, "transcript"),
    ({"tasks": {}}, "tasks"),
    ({"tasks": ["summary"]}, "tasks"),
    ({"tasks": {"summary": 42}}, "tasks"),
    ({"tasks": {"summary": ""}}, "tasks"),
    ({"provider": "mistral"}, "provider"),
    ({"model": "gpt-4o-mini"}, "model"),  # gemini does not offer it
])
def test_bad_input_is_400_naming_the_field(alice_client, overrides, field):
    response = alice_client.post("/api/v1/jobs/analyze", body(**overrides), format="json")
    assert_error(response, 400, "validation_error", field)
    assert Job.objects.count() == 0


def test_missing_fields_are_named(alice_client):
    error = assert_error(alice_client.post("/api/v1/jobs/analyze", {}, format="json"), 400, "validation_error")
    assert {"transcript", "provider", "model", "tasks"} <= set(error["fields"])


def test_unknown_model_lists_the_valid_ones(alice_client):
    error = assert_error(alice_client.post("/api/v1/jobs/analyze", body(model="gemini-9"), format="json"),
                         400, "validation_error", "model")
    assert "gemini-2.5-flash" in error["fields"]["model"][0]


def test_provider_without_a_key_is_400_on_provider(alice_client):
    with override_settings(ANTHROPIC_API_KEY=""):
        response = alice_client.post("/api/v1/jobs/analyze",
                                     body(provider="anthropic", model="claude-haiku-4-5"), format="json")
    error = assert_error(response, 400, "validation_error", "provider")
    assert "ANTHROPIC_API_KEY" in error["fields"]["provider"][0]
    assert Job.objects.count() == 0


def test_malformed_json_is_parse_error(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", data='{"transcript": ', content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_other_content_type_is_415(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", data="transcript=hi", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_unknown_url_is_404_in_the_error_shape(alice_client):
    assert_error(alice_client.get("/api/v1/nothing-here"), 404, "not_found")


def test_a_model_past_its_retirement_day_is_refused_at_submit_and_estimate(alice_client, monkeypatch):
    import datetime as dt

    import analysis.engine.catalogue

    data = body(provider="anthropic", model="claude-sonnet-4-5")
    monkeypatch.setattr(analysis.engine.catalogue, "utc_today", lambda: dt.date(2026, 11, 30))
    assert alice_client.post("/api/v1/jobs/estimate", data, format="json").status_code == 200  # its last day
    monkeypatch.setattr(analysis.engine.catalogue, "utc_today", lambda: dt.date(2026, 12, 1))
    for path in ("/api/v1/jobs/analyze", "/api/v1/jobs/estimate"):
        response = alice_client.post(path, data, format="json")
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "validation_error" and "retired by anthropic on 2026-11-30" in error["fields"]["model"][0]
    # GET /models lists it only when asked for retired models too (it is no longer usable)
    models = {m["name"]: m for m in
              alice_client.get("/api/v1/models?provider=anthropic&include_retired=true").json()["models"]}
    assert models["claude-sonnet-4-5"]["retires_on"] == "2026-11-30" and models["claude-haiku-4-5"]["retires_on"] is None
