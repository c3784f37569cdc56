"""Batch mode over real HTTP, per provider: the job's calls go out as provider batches (the emulator's batch
protocols, the real SDKs), the slot is given back while it waits, the answers come back by custom id at the
batch price (checked by hand), a map-reduce task takes one round per level, expiry applies the fallback,
cancel reaches the provider, and several jobs share one batch."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from emulator.batches import complete_batches, configure_batches, list_batches
from jobs.models import BatchRequest, Job, ProviderBatch
from jobs.worker.provider_batch_poller import batches_poll
from tests.conftest import transcript, work_burst
from tests.jobs.test_job_costs import by_hand, cost

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "actions": "List the action items with owners"}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
# Batch prices typed in (input, cached input, cache write, output, reasoning), USD per million tokens, from the
# providers' batch price lists (genai-prices 0.2.3 variants from 2026-10-14): half of standard, except cache
# reads, which OpenAI's gpt-4o-mini and Gemini 2.5 Flash bill at the standard rate in batches too.
BATCH = {"openai": ("0.075", "0.075", "0.075", "0.30", "0.30"),
         "anthropic": ("0.50", "0.05", "0.625", "2.50", "2.50"),
         "gemini": ("0.15", "0.03", "0.15", "1.25", "1.25")}
STANDARD = {"openai": ("0.15", "0.075", "0.15", "0.60", "0.60")}


def submit(client, provider: str, tasks=TASKS, **extra) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": extra.pop("text", None) or transcript("TS3010a.txt"), "provider": provider,
        "model": MODELS[provider], "tasks": tasks, "processing": "batch", **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def batch_records(emulator, provider: str) -> list[dict]:
    return [r for r in emulator.requests(provider) if r.get("batch")]


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_batch_job_finishes_with_its_answers_at_the_batch_price(alice_client, emulator, provider):
    emulator.configure(cached_tokens=1000, cache_write_tokens=500 if provider == "anthropic" else 0)
    configure_batches(emulator.url, completion_delay=0)
    job_id = submit(alice_client, provider)
    work_burst()
    # The round is over and the slot given back: the job waits for its batch with no worker.
    job = Job.objects.get(id=job_id)
    assert job.status == "started" and job.awaiting_batch and job.worker == "" and job.heartbeat_at is None
    waiting = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert waiting["processing"] == "batch" and waiting["batch"]["waiting"] is True
    assert waiting["batch"]["calls"]["pending"] == 2 and waiting["progress"]["tasks_done"] == 0
    assert emulator.requests(provider) == []  # nothing was sent synchronously

    report = batches_poll(worker="test-poller")
    assert report["submitted"] == 2 and report["collected"] == 2 and report["continued"] == 1
    [batch] = ProviderBatch.objects.all()
    assert batch.status == "ended" and batch.outcome == "completed" and batch.request_count == 2
    work_burst()

    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and data["attempts"] == 1, data  # the continuation is not an attempt
    assert data["batch"]["batch_ids"] == [batch.provider_batch_id] and data["batch"]["calls"]["succeeded"] == 2
    records = batch_records(emulator, provider)
    assert len(records) == 2 and len(emulator.requests(provider)) == 2  # every call went in the one batch
    total = Decimal(0)
    for name, prompt in TASKS.items():
        [record] = [r for r in records if prompt in str(r["body"])]
        usage = by_hand(provider, {**record, "output_tokens": record["output_tokens"] + 64})
        usage["reasoning_tokens"] = 0
        expected = cost(BATCH[provider], usage)
        task = data["result"]["metadata"]["tasks"][name]
        assert task["usage"] == usage and task["cost"] == float(expected)
        assert data["result"]["results"][name].startswith("[emulated")
        total += expected
    assert data["result"]["metadata"]["total_cost"] == float(total)


def rounds(alice_client, job_id: str, limit: int = 6) -> int:
    """Deliver, poll, deliver, ... until the job is final; how many batch rounds it took."""
    count = 0
    work_burst()
    while not Job.objects.get(id=job_id).is_final and count < limit:
        batches_poll(worker="test-poller")
        count += 1
        work_burst()
    return count


def test_a_map_reduce_task_takes_one_batch_round_per_level(alice_client, emulator, settings):
    settings.MAX_PROMPT_TOKENS = 16_000  # the long transcript in several chunks: map, then reduce
    emulator.configure(max_context=16_000)
    text = transcript("Bed015.txt")
    job_id = submit(alice_client, "openai", tasks={"summary": "Provide a brief summary"}, text=text)
    assert rounds(alice_client, job_id) == 2
    job = Job.objects.get(id=job_id)
    task = job.tasks.get()
    assert job.status == "finished" and task.chunks > 1 and task.calls == task.chunks + 1
    batches = list(ProviderBatch.objects.order_by("created_at"))
    assert [b.request_count for b in batches] == [task.chunks, 1]  # every map call in one batch, then the reduce
    assert emulator.stats()["rejected_over_context"] == 0


@pytest.mark.parametrize("fallback", ["standard", "fail"])
def test_an_expired_batch_applies_the_jobs_fallback(alice_client, emulator, fallback):
    configure_batches(emulator.url, outcome="expired", expire_answered=1)
    job_id = submit(alice_client, "openai", fallback=fallback)
    rounds(alice_client, job_id)
    job = Job.objects.get(id=job_id)
    tasks = {t.name: t for t in job.tasks.all()}
    [answered] = [r for r in batch_records(emulator, "openai")]
    expired_name = next(n for n, p in TASKS.items() if p not in str(answered["body"]))
    answered_name = next(n for n in TASKS if n != expired_name)
    assert tasks[answered_name].status == "succeeded", (
        job.status, job.error, job.attempts, [(t.name, t.status, t.error) for t in tasks.values()],
        list(BatchRequest.objects.values_list("task_name", "status", "error")))
    synchronous = [r for r in emulator.requests("openai") if not r.get("batch")]
    if fallback == "standard":
        # Sent again as a standard call, billed at the standard price.
        assert job.status == "finished" and tasks[expired_name].status == "succeeded"
        [resent] = synchronous
        assert TASKS[expired_name] in str(resent["body"])
        assert tasks[expired_name].cost == cost(STANDARD["openai"], {
            "input_tokens": resent["prompt_tokens"], "cached_input_tokens": 0, "cache_write_tokens": 0,
            "output_tokens": resent["output_tokens"], "reasoning_tokens": 0})
    else:
        assert synchronous == [] and tasks[expired_name].status == "failed"
        assert "expired without an answer" in tasks[expired_name].error
        assert "fallback is fail" in tasks[expired_name].error
        assert BatchRequest.objects.filter(status="expired").count() == 1


def test_cancel_while_waiting_cancels_the_provider_batch(alice_client, emulator):
    configure_batches(emulator.url, completion_delay=3600)
    job_id = submit(alice_client, "anthropic")
    work_burst()
    batches_poll(worker="test-poller")
    [batch] = ProviderBatch.objects.all()
    assert batch.status == "submitted" and batch.provider_batch_id
    response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    batches_poll(worker="test-poller")
    [listed] = list_batches(emulator.url)
    assert listed["id"] == batch.provider_batch_id and listed["canceled"]
    assert BatchRequest.objects.filter(status="discarded").count() == 2
    assert Job.objects.get(id=job_id).lost_calls == 2  # they were in a batch: counted lost, never stored


def test_jobs_share_a_batch_and_cancelling_one_leaves_the_batch_to_the_other(alice_client, emulator):
    configure_batches(emulator.url, completion_delay=3600)
    first = submit(alice_client, "gemini", tasks={"summary": "Provide a brief summary"})
    second = submit(alice_client, "gemini", tasks={"actions": "List the action items with owners"})
    work_burst()
    batches_poll(worker="test-poller")
    [batch] = ProviderBatch.objects.all()
    assert batch.request_count == 2  # one batch carries the calls of both jobs
    alice_client.post(f"/api/v1/jobs/{first}/cancel")
    batches_poll(worker="test-poller")
    [listed] = list_batches(emulator.url)
    assert not listed["canceled"]  # the other job still waits on it
    assert Job.objects.get(id=first).lost_calls == 1
    complete_batches(emulator.url, [listed["id"]])
    rounds(alice_client, second)
    job = Job.objects.get(id=second)
    assert job.status == "finished" and job.lost_calls == 0
    assert BatchRequest.objects.get(job_id=first).status == "discarded"


def test_batch_max_wait_applies_the_fallback(alice_client, emulator, settings):
    configure_batches(emulator.url, completion_delay=3600)
    job_id = submit(alice_client, "openai", tasks={"summary": "Provide a brief summary"}, fallback="fail")
    work_burst()
    assert batches_poll(worker="test-poller")["submitted"] == 1
    # The wait began longer ago than BATCH_MAX_WAIT (moved back rather than slept through).
    settings.BATCH_MAX_WAIT = 60
    Job.objects.filter(id=job_id).update(batch_wait_started_at=Job.objects.get(id=job_id).batch_wait_started_at
                                         - datetime.timedelta(seconds=61))
    report = batches_poll(worker="test-poller")
    assert report["expired"] == 1 and report["continued"] == 1, (report, Job.objects.filter(id=job_id).values(
        "status", "awaiting_batch", "batch_wait_started_at", "error").first(), list(BatchRequest.objects.values(
        "status")))
    work_burst()
    job = Job.objects.get(id=job_id)
    assert job.status == "failed" and "BATCH_MAX_WAIT" in job.tasks.get().error
    batches_poll(worker="test-poller")
    assert list_batches(emulator.url)[0]["canceled"]  # nobody waits on it any more


def test_a_refused_batch_is_submitted_again_on_the_next_pass(alice_client, emulator):
    configure_batches(emulator.url, create_refusals=1)
    job_id = submit(alice_client, "anthropic", tasks={"summary": "Provide a brief summary"})
    work_burst()
    assert batches_poll(worker="test-poller")["submitted"] == 0
    assert ProviderBatch.objects.get().status == "abandoned"
    assert BatchRequest.objects.get().status == "pending"
    rounds(alice_client, job_id)
    assert Job.objects.get(id=job_id).status == "finished"
    assert len(list_batches(emulator.url)) == 1


def test_the_reconciler_leaves_a_waiting_batch_job_alone(alice_client, emulator, settings):
    from jobs.worker.reconcile import jobs_reconcile

    configure_batches(emulator.url, completion_delay=3600)
    job_id = submit(alice_client, "openai", tasks={"summary": "Provide a brief summary"})
    work_burst()
    # However old its last heartbeat: a waiting job has no worker to lose.
    Job.objects.filter(id=job_id).update(heartbeat_at=Job.objects.get(id=job_id).created_at)
    report = jobs_reconcile(now=Job.objects.get(id=job_id).created_at + datetime.timedelta(hours=2))
    assert report.recovered == {}
    job = Job.objects.get(id=job_id)
    assert job.status == "started" and job.awaiting_batch and job.attempts == 1
