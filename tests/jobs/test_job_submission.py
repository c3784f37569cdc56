"""One submission resolves its model once and counts its transcript's tokens at most once; the job row
carries the resolved id, and the worker runs what the row holds."""

from __future__ import annotations

import pytest

import analysis.analyze
import analysis.engine.estimate
import jobs.submission
from analysis.engine.prompts import transcript_document
from jobs.models import Job
from tests.conftest import assert_error, transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "decisions": "List the decisions"}


def spy(monkeypatch, module, name: str) -> list:
    """Record the arguments of every call of module.name (a function of ours, called as it is)."""
    calls: list = []
    real = getattr(module, name)

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return calls


def test_a_checked_submission_resolves_once_and_counts_once(alice_client, settings, monkeypatch):
    text = transcript("TS3010a.txt")
    # Between the count and the bound that skips it: the size check must count, and alice's plan budget
    # makes the spending check estimate too.
    settings.MAX_TRANSCRIPT_TOKENS = len(text.encode()) // 2
    resolved = spy(monkeypatch, jobs.submission, "resolve_model")
    resolved_again = spy(monkeypatch, analysis.analyze, "resolve_model")
    counted = [spy(monkeypatch, module, "count_tokens") for module in (jobs.submission, analysis.engine.estimate)]

    response = alice_client.post("/api/v1/jobs/analyze", {"transcript": text, "provider": "openai",
                                                          "model": "gpt-4o-mini", "tasks": TASKS}, format="json")

    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    document = transcript_document(job.transcript)
    assert len(resolved) == 1 and resolved_again == []
    assert [args for calls in counted for args, _ in calls if args[0] == document] == [(document,)]


def test_the_estimate_gets_the_count_of_the_size_check(alice_client, settings, monkeypatch):
    text = transcript("TS3010a.txt")
    settings.MAX_TRANSCRIPT_TOKENS = len(text.encode()) // 2
    counted = [spy(monkeypatch, module, "count_tokens") for module in (jobs.submission, analysis.engine.estimate)]
    response = alice_client.post("/api/v1/jobs/estimate", {"transcript": text, "provider": "openai",
                                                           "model": "gpt-4o-mini", "tasks": TASKS}, format="json")
    assert response.status_code == 200, response.content
    documents = [args[0] for calls in counted for args, _ in calls if args[0].startswith("<transcript>")]
    assert len(documents) == 1
    assert response.json()["transcript_tokens"] == analysis.engine.estimate.count_tokens(
        documents[0], provider="openai", model="gpt-4o-mini")


def test_the_row_holds_the_resolved_id_and_the_worker_runs_it(alice_client, emulator, settings):
    settings.ALLOW_UNLISTED_MODELS = True
    response = alice_client.post("/api/v1/jobs/analyze", {"transcript": "Alice: We ship on Friday.",
                                                          "provider": "openai", "model": "llama3.1:8b",
                                                          "tasks": {"summary": "Summarize"}}, format="json")
    assert response.status_code == 202, response.content
    # Accepted when submitted: a worker whose setting differs runs it all the same, priced as unknown.
    settings.ALLOW_UNLISTED_MODELS = False
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()
    assert data["status"] == "finished", data
    assert data["result"]["metadata"]["model"] == "llama3.1:8b" and data["result"]["metadata"]["price_unknown"]
    assert [r["body"]["model"] for r in emulator.requests("openai")] == ["llama3.1:8b"]


def test_field_errors_come_together_before_what_the_service_checks(alice_client):
    # A bad provider is a field error like a bad `tasks`: both reported, before any missing transcript.
    response = alice_client.post("/api/v1/jobs/analyze", {"provider": "nope", "model": "m", "tasks": "x"},
                                 format="json")
    error = assert_error(response, 400, "validation_error")
    assert set(error["fields"]) == {"provider", "tasks"} and error["message"].startswith("provider: Unknown provider")
