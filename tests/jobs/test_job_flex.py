"""Flex processing over real HTTP: the flex tier asked for (OpenAI service_tier, Gemini serviceTier), billed at
the flex price by hand, a capacity refusal (429) retried with backoff, then the job's fallback."""

from __future__ import annotations

from decimal import Decimal

import pytest

from emulator.batches import configure_batches
from jobs.models import Job
from tests.conftest import transcript, work_burst
from tests.jobs.test_job_costs import CACHE_WRITE, CACHED, REASONING, by_hand, cost

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "actions": "List the action items with owners"}
# Flex prices typed in (input, cached input, cache write, output, reasoning), USD per million tokens:
# OpenAI's flex list for gpt-5-mini (half of standard; genai-prices 0.2.3 variant from 2026-10-12), and
# the catalogue overlay's gemini-3.5-flash flex (half of 1.50 / 0.15 / 9; cache writes, which Gemini does not
# bill, at the standard input rate).
FLEX = {("openai", "gpt-5-mini"): ("0.125", "0.0125", "0.125", "1", "1"),
        ("gemini", "gemini-3.5-flash"): ("0.75", "0.075", "1.50", "4.5", "4.5")}
STANDARD = {("openai", "gpt-5-mini"): ("0.25", "0.025", "0.25", "2", "2")}


def submit(client, provider="openai", model="gpt-5-mini", **extra) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": provider, "model": model, "tasks": TASKS,
        "processing": "flex", **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def tier_of(provider: str, record: dict) -> str | None:
    return record["body"].get("service_tier" if provider == "openai" else "serviceTier")


@pytest.mark.parametrize("provider,model", list(FLEX))
def test_a_flex_job_asks_the_flex_tier_and_pays_the_flex_price(alice_client, emulator, provider, model):
    emulator.configure(cached_tokens=CACHED, cache_write_tokens=CACHE_WRITE, reasoning_tokens=REASONING)
    job_id = submit(alice_client, provider, model)
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and data["processing"] == "flex", data
    records = emulator.requests(provider)
    assert len(records) == 2 and all(str(tier_of(provider, r)).lower() == "flex" for r in records)
    total = Decimal(0)
    for name, prompt in TASKS.items():
        [record] = [r for r in records if prompt in str(r["body"])]
        expected = cost(FLEX[(provider, model)], by_hand(provider, record))
        assert data["result"]["metadata"]["tasks"][name]["cost"] == float(expected)
        total += expected
    assert data["result"]["metadata"]["total_cost"] == float(total)


def test_capacity_refusals_are_retried_with_backoff_on_the_flex_tier(alice_client, emulator):
    configure_batches(emulator.url, flex_refusals=3)
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary"})
    work_burst()
    job = Job.objects.get(id=job_id)
    task = job.tasks.get()
    assert job.status == "finished" and task.tries == 4 and task.calls == 1
    records = emulator.requests("openai")
    assert [r["status"] for r in records] == [429, 429, 429, 200]
    assert all(r["body"]["service_tier"] == "flex" for r in records)
    assert "Flex capacity" in task.last_error


def test_flex_refused_for_good_falls_back_to_standard_at_the_standard_price(alice_client, emulator):
    configure_batches(emulator.url, flex_refusals=-1)
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary"})
    work_burst()
    job = Job.objects.get(id=job_id)
    task = job.tasks.get()
    assert job.status == "finished", job.error
    records = emulator.requests("openai")
    refused, served = [r for r in records if r["status"] == 429], [r for r in records if r["status"] == 200]
    assert len(refused) >= 2 and len(served) == 1 and "service_tier" not in served[0]["body"]
    assert task.tries == len(records) and task.calls == 1
    assert task.cost == cost(STANDARD[("openai", "gpt-5-mini")], {
        "input_tokens": served[0]["prompt_tokens"], "cached_input_tokens": 0, "cache_write_tokens": 0,
        "output_tokens": served[0]["output_tokens"], "reasoning_tokens": 0})


def test_flex_refused_for_good_with_fallback_fail_fails_the_task_saying_why(alice_client, emulator):
    configure_batches(emulator.url, flex_refusals=-1)
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary"}, fallback="fail")
    work_burst()
    job = Job.objects.get(id=job_id)
    assert job.status == "failed"
    assert "Flex capacity unavailable, and the job's fallback is fail" in job.tasks.get().error
    assert all(r["status"] == 429 and r["body"]["service_tier"] == "flex" for r in emulator.requests("openai"))
