"""POST /api/v1/jobs/estimate: the analyze body in, token counts and a cost range out, nothing run."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.conftest import transcript

pytestmark = pytest.mark.django_db

TASKS = {"summary": "Provide a brief summary", "key_points": "Extract key points"}


def body(**overrides):
    data = {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini", "tasks": TASKS}
    data.update(overrides)
    return data


@pytest.mark.parametrize("path", ["/api/v1/jobs/estimate", "/api/v1/jobs/estimate/"])
def test_estimate_answers_numbers_and_runs_nothing(alice_client, emulator, path):
    response = alice_client.post(path, body(max_output_tokens=500), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["calls"] == 2 and data["max_output_tokens"] == 500 and data["token_count"] == "exact"
    assert isinstance(data["cost_low"], float) and isinstance(data["cost_high"], float)
    assert 0 < data["cost_low"] < data["cost_high"]
    assert data["input_tokens"] == sum(t["input_tokens"] for t in data["tasks"].values())
    assert list(data["tasks"]) == ["summary", "key_points"]
    assert Job.objects.count() == 0 and emulator.requests() == []


@pytest.mark.parametrize("provider,model", [("gemini", "gemini-2.5-flash"), ("anthropic", "claude-haiku-4-5")])
def test_estimate_for_other_providers_is_approximate(alice_client, provider, model):
    data = alice_client.post("/api/v1/jobs/estimate", body(provider=provider, model=model), format="json").json()
    assert data["token_count"] == "approximate" and data["calls"] == 2 and data["cost_high"] > data["cost_low"] > 0


def test_estimate_rejects_what_analyze_rejects(alice_client):
    response = alice_client.post("/api/v1/jobs/estimate", body(model="gpt-99"), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "gpt-4o-mini" in error["fields"]["model"][0]
    response = alice_client.post("/api/v1/jobs/estimate", body(tasks={}), format="json")
    assert response.status_code == 400 and "tasks" in response.json()["error"]["fields"]


def test_estimate_needs_a_token(client):
    response = client.post("/api/v1/jobs/estimate", body(), content_type="application/json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_estimate_takes_a_profile_like_analyze(alice_client, builtin_profiles):
    """The same serializer as analyze: a saved profile's tasks are estimated."""
    response = alice_client.post("/api/v1/jobs/estimate", {
        "transcript": transcript("TS3010a.txt"), "profile": "meeting-notes", "provider": "openai",
        "model": "gpt-4o-mini"}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert len(data["tasks"]) >= 1 and data["calls"] == len(data["tasks"]) and data["cost_high"] > 0
