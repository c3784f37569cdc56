"""Batch mode survives SIGKILL: `manage.py rqworker` subprocesses whose batch poller is killed inside the
create call (the key committed, the batch created at the provider, its id never stored) or after it (the id
stored, no results yet); another worker finds the batch by its key (OpenAI metadata, Gemini display_name,
Anthropic: the unclaimed batch created since the key, with our count), never submits it twice, and finishes."""

from __future__ import annotations

import os
import signal

import pytest

from emulator.batches import complete_batches, configure_batches, list_batches
from jobs.models import Job, ProviderBatch
from tests.conftest import PROCESS_WAIT, wait_for
from tests.jobs.faults import TEXT, WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
FAST_POLL = {"BATCH_POLL_INTERVAL_SECONDS": "0.2"}


def submit(client, provider: str) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": provider, "model": MODELS[provider], "processing": "batch", "reuse": False,
        "tasks": {"summary": "Provide a brief summary", "actions": "List the action items"}}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def kill(worker: WorkerProcess) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.proc.wait(10)
    worker.stop()


def finish_with_another_worker(emulator, tmp_path, job_id: str) -> Job:
    worker = WorkerProcess(emulator, tmp_path, "b", **FAST_POLL)
    try:
        return wait_for(lambda: (job := Job.objects.get(id=job_id)).is_final and job, PROCESS_WAIT, "the job to end")
    finally:
        worker.stop()


@pytest.mark.parametrize("provider", list(MODELS))
def test_killed_inside_the_create_call_the_batch_is_found_by_its_key(alice_client, emulator, tmp_path, provider):
    configure_batches(emulator.url, create_delay=30)  # created at the provider; its creator hears of it later
    job_id = submit(alice_client, provider)
    worker = WorkerProcess(emulator, tmp_path, "a", **FAST_POLL)
    try:
        [created] = wait_for(lambda: list_batches(emulator.url), PROCESS_WAIT, "the batch to exist at the provider")
        row = ProviderBatch.objects.get()
        assert row.status == "submitting" and row.provider_batch_id == ""  # the key only
    finally:
        kill(worker)
    configure_batches(emulator.url, create_delay=0)
    job = finish_with_another_worker(emulator, tmp_path, job_id)
    assert job.status == "finished", job.error
    assert [b["id"] for b in list_batches(emulator.url)] == [created["id"]]  # never submitted twice
    row.refresh_from_db()
    assert (row.status, row.outcome, row.provider_batch_id) == ("ended", "completed", created["id"].join(
        ["batches/", ""]) if provider == "gemini" else created["id"])
    assert all(r.get("batch") for r in emulator.requests(provider))  # nothing sent outside the batch
    assert job.attempts == 1 and job.lost_calls == 0


def test_killed_after_the_batch_id_was_stored_another_worker_collects_it(alice_client, emulator, tmp_path):
    configure_batches(emulator.url, completion_delay=3600)
    job_id = submit(alice_client, "openai")
    worker = WorkerProcess(emulator, tmp_path, "a", **FAST_POLL)
    try:
        wait_for(lambda: ProviderBatch.objects.filter(status="submitted").exists(), PROCESS_WAIT, "the batch id stored")
    finally:
        kill(worker)
    complete_batches(emulator.url)
    job = finish_with_another_worker(emulator, tmp_path, job_id)
    assert job.status == "finished" and len(list_batches(emulator.url)) == 1
    assert ProviderBatch.objects.get().status == "ended"
