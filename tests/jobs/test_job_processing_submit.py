"""`processing` and `fallback` at submit: analyze, batch, profiles, the CLI, LOW_QUEUE_PROCESSING, estimate per
mode, and a 400 for a mode the provider or model does not offer (never a silent standard price)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

TEXT = "Alice: We ship on Friday.\nBob: I will write the release notes."


def analyze(client, **overrides):
    body = {"transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": {"summary": "Summarize"}}
    body.update(overrides)
    return client.post("/api/v1/jobs/analyze", body, format="json")


def test_a_job_asks_for_batch_and_its_document_says_so(alice_client):
    response = analyze(alice_client, processing="batch", fallback="fail")
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    assert (job.processing, job.fallback) == ("batch", "fail")
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["processing"] == "batch"


def test_the_seeds_plain_request_stays_standard(alice_client):
    job = Job.objects.get(id=analyze(alice_client).json()["job_id"])
    assert (job.processing, job.fallback) == ("standard", "standard")


@pytest.mark.parametrize("provider,model,processing,words", [
    ("anthropic", "claude-haiku-4-5", "flex", "Anthropic offers no flex processing"),
    ("openai", "gpt-4o-mini", "flex", "no flex price"),
    ("gemini", "gemini-3.5-flash", "batch", "no batch price"),
])
def test_a_mode_the_model_does_not_offer_is_a_400(alice_client, provider, model, processing, words):
    body = assert_error(analyze(alice_client, provider=provider, model=model, processing=processing), 400,
                        "validation_error", field="processing")
    assert words in body["fields"]["processing"][0]
    assert Job.objects.count() == 0


def test_an_unknown_mode_is_a_400(alice_client):
    assert_error(analyze(alice_client, processing="overnight"), 400, "validation_error", field="processing")
    assert_error(analyze(alice_client, processing="batch", fallback="maybe"), 400, "validation_error",
                 field="fallback")


def test_the_batch_endpoint_takes_processing(alice_client):
    response = alice_client.post("/api/v1/jobs/batch", {
        "transcript": TEXT, "provider": "anthropic", "model": "claude-haiku-4-5", "processing": "batch",
        "tasks": [{"task_name": "summary", "prompt": "Summarize"}]}, format="json")
    assert response.status_code == 202, response.content
    assert Job.objects.get(id=response.json()["job_id"]).processing == "batch"


def test_low_queue_processing_makes_batch_the_default_of_low_where_the_model_has_it(alice_client, settings):
    settings.LOW_QUEUE_PROCESSING = "batch"
    batch = lambda **kw: alice_client.post("/api/v1/jobs/batch", {  # noqa: E731 - batch jobs go to `low`
        "transcript": TEXT, "tasks": [{"task_name": "s", "prompt": "Summarize"}], **kw}, format="json")
    low = Job.objects.get(id=batch(provider="openai", model="gpt-4o-mini").json()["job_id"])
    assert (low.queue, low.processing) == ("low", "batch")
    # A model with no batch price keeps standard: a deployment default never refuses a job.
    no_batch = Job.objects.get(id=batch(provider="gemini", model="gemini-3.5-flash").json()["job_id"])
    assert no_batch.processing == "standard"
    # Asked for explicitly, standard stays standard; and a job outside `low` is not touched.
    asked = Job.objects.get(id=batch(provider="openai", model="gpt-4o-mini", processing="standard").json()["job_id"])
    assert asked.processing == "standard"
    assert Job.objects.get(id=analyze(alice_client).json()["job_id"]).processing == "standard"


def test_estimate_prices_each_mode_the_model_offers(alice_client):
    response = alice_client.post("/api/v1/jobs/estimate", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": {"summary": "Summarize"},
        "processing": "batch", "max_output_tokens": 1000}, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["processing"] == "batch" and list(data["by_processing"]) == ["standard", "batch"]
    standard, batch = data["by_processing"]["standard"], data["by_processing"]["batch"]
    assert (data["cost_low"], data["cost_high"]) == (batch["cost_low"], batch["cost_high"])
    # gpt-4o-mini's batch input and output are half price; the highest estimate has no cache reads in it.
    assert batch["cost_high"] == pytest.approx(standard["cost_high"] / 2, abs=2e-8)
    flex = alice_client.post("/api/v1/jobs/estimate", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-5-mini", "tasks": {"summary": "Summarize"}},
        format="json").json()
    assert list(flex["by_processing"]) == ["standard", "flex", "batch"] and flex["processing"] == "standard"


def test_a_profile_carries_processing_for_its_jobs(alice_client):
    response = alice_client.post("/api/v1/profiles", {
        "name": "overnight", "tasks": [{"name": "summary", "prompt": "Summarize"}], "default_provider": "openai",
        "default_model": "gpt-4o-mini", "processing": "batch", "fallback": "fail"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["processing"], response.json()["fallback"]) == ("batch", "fail")
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "profile": "overnight"},
                                               format="json").json()["job_id"])
    assert (job.processing, job.fallback) == ("batch", "fail")
    # The request's own processing overrides the profile's.
    job = Job.objects.get(id=alice_client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "profile": "overnight", "processing": "standard"}, format="json").json()["job_id"])
    assert job.processing == "standard"
    refused = alice_client.post("/api/v1/profiles", {
        "name": "flexy", "tasks": [{"name": "s", "prompt": "Summarize"}], "default_provider": "anthropic",
        "default_model": "claude-haiku-4-5", "processing": "flex"}, format="json")
    assert_error(refused, 400, "validation_error", field="processing")


def test_the_cli_takes_processing_and_fallback(alice, tmp_path):
    path = tmp_path / "meeting.txt"
    path.write_text(TEXT)
    out = io.StringIO()
    call_command("analyze", str(path), "--user", "alice", "--task", "summary=Summarize", "--provider", "openai",
                 "--model", "gpt-4o-mini", "--processing", "batch", "--fallback", "fail", stdout=out,
                 stderr=io.StringIO())
    job = Job.objects.get()
    assert (job.processing, job.fallback) == ("batch", "fail")
    with pytest.raises(CommandError, match="Anthropic offers no flex"):
        call_command("analyze", str(path), "--user", "alice", "--task", "summary=Summarize", "--provider",
                     "anthropic", "--model", "claude-haiku-4-5", "--processing", "flex", stdout=io.StringIO(),
                     stderr=io.StringIO())
