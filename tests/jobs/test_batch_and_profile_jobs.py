"""Batch jobs (the seed's analyze_batch_task shape) and analyze with a saved profile instead of tasks."""

from __future__ import annotations

import pytest

from analysis.models import AnalysisProfile
from jobs.models import Job
from tests.conftest import assert_error, transcript, work_burst

# The built-in profiles as the migrations leave them, whatever a transactional test on this worker flushed.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("builtin_profiles")]

BATCH_TASKS = [
    {"task_name": "Summary", "prompt": "Summarize the meeting"},
    {"task_name": "Action items", "prompt": "List the action items"},
    {"task_name": "Decisions", "prompt": "List the decisions"},
]


def batch(client, **overrides):
    body = {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
            "tasks": BATCH_TASKS, **overrides}
    return client.post("/api/v1/jobs/batch", body, format="json")


@pytest.mark.django_db(transaction=True)
def test_batch_runs_on_low_with_results_keyed_by_task_name_in_order(alice_client, alice):
    alice.plan = "pro"  # a pro user's short analyze would go to `high`; a batch still goes to `low`
    alice.save(update_fields=["plan"])
    response = batch(alice_client, transcript=transcript("TS3010a.vtt"))
    assert response.status_code == 202, response.content
    assert set(response.json()) == {"job_id", "status", "message"}
    job = Job.objects.get(id=response.json()["job_id"])
    assert job.kind == Job.Kind.BATCH and job.queue == "low" and job.transcript_format == "vtt"

    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert data["status"] == "finished", data
    assert data["queue"] == "low"
    results = data["result"]["results"]
    assert list(results) == ["Summary", "Action items", "Decisions"]
    assert "Summarize the meeting" in results["Summary"] and "List the decisions" in results["Decisions"]


@pytest.mark.parametrize("tasks,message", [
    ([{"task_name": "Summary", "prompt": "a"}, {"task_name": "Summary", "prompt": "b"}], "unique"),
    ({"Summary": "Summarize"}, "task_name"),  # the analyze shape is not the batch shape
    ([{"task_name": "Summary"}], "task_name"),
    ([], "at least one"),
])
def test_bad_batch_tasks_are_400(alice_client, tasks, message):
    error = assert_error(batch(alice_client, tasks=tasks), 400, "validation_error", "tasks")
    assert message in error["fields"]["tasks"][0]
    assert Job.objects.count() == 0


def test_analyze_with_a_builtin_profile_by_name(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "gemini", "model": "gemini-2.5-flash",
        "profile": "meeting-notes",
    }, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    builtin = AnalysisProfile.objects.get(owner=None, name="meeting-notes")
    assert job.profile_name == "meeting-notes"
    assert [(t.name, t.prompt) for t in job.tasks.all()] == builtin.task_pairs()
    assert job.system_prompt == builtin.system_prompt


def test_profile_defaults_and_overrides(alice_client):
    created = alice_client.post("/api/v1/profiles", {
        "name": "standup", "system_prompt": "Be terse.", "tasks": [{"name": "blockers", "prompt": "List blockers"}],
        "default_provider": "anthropic", "default_model": "claude-haiku-4-5",
    }, format="json").json()

    # No provider or model in the request: the profile's defaults.
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: I am blocked on the API keys.", "profile": str(created["id"])}, format="json"
    ).json()["job_id"])
    assert (job.provider, job.model, job.system_prompt) == ("anthropic", "claude-haiku-4-5", "Be terse.")

    # The request's provider, model and system prompt win.
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: blocked.", "profile": "standup", "provider": "openai", "model": "gpt-4o-mini",
        "system_prompt": "Be kind."}, format="json").json()["job_id"])
    assert (job.provider, job.model, job.system_prompt) == ("openai", "gpt-4o-mini", "Be kind.")


def test_own_profile_shadows_a_builtin_of_the_same_name(alice_client, bob_client):
    alice_client.post("/api/v1/profiles", {"name": "lecture", "tasks": [{"name": "mine", "prompt": "Alice's"}]},
                      format="json")
    body = {"transcript": "Prof: Today, entropy.", "provider": "gemini", "model": "gemini-2.5-flash",
            "profile": "lecture"}
    alice_job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", body, format="json").json()["job_id"])
    bob_job = Job.objects.get(id=bob_client.post("/api/v1/jobs/analyze", body, format="json").json()["job_id"])
    assert [t.name for t in alice_job.tasks.all()] == ["mine"]
    assert [t.name for t in bob_job.tasks.all()] == ["outline", "key_concepts", "review_questions"]


def test_profile_errors(alice_client, bob_client):
    pid = alice_client.post("/api/v1/profiles", {"name": "private", "tasks": {"a": "b"}}, format="json").json()["id"]
    base = {"transcript": "A: hi", "provider": "gemini", "model": "gemini-2.5-flash"}
    # Bob cannot use Alice's profile, by id or by name.
    for ref in (str(pid), "private", "no-such-profile"):
        assert_error(bob_client.post("/api/v1/jobs/analyze", {**base, "profile": ref}, format="json"),
                     400, "validation_error", "profile")
    # Exactly one of tasks and profile.
    assert_error(alice_client.post("/api/v1/jobs/analyze", {**base, "profile": "private", "tasks": {"x": "y"}},
                                   format="json"), 400, "validation_error", "tasks")
    # A built-in without defaults needs a provider and model from the request.
    assert_error(alice_client.post("/api/v1/jobs/analyze", {"transcript": "A: hi", "profile": "lecture"},
                                   format="json"), 400, "validation_error", "provider")
    assert Job.objects.count() == 0
