"""A job's bill, recomputed by hand from the usage the emulator returned, for every provider.

The traps each provider sets: OpenAI's prompt_tokens include the cached ones
(prompt_tokens_details) and completion_tokens include reasoning; Gemini's
promptTokenCount includes cachedContentTokenCount and its thoughts are billed as
output on top of candidatesTokenCount; Anthropic's input_tokens exclude cache
reads and writes, which have their own rates. Prices below are typed in from
the providers' price lists (USD per million tokens), not read from the catalogue.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "actions": "List the action items with owners"}
CACHED, CACHE_WRITE, REASONING = 1000, 500, 64

# (input, cached input, cache write, output, reasoning) per million tokens.
PRICES = {
    ("openai", "gpt-5"): ("1.25", "0.125", "1.25", "10", "10"),
    ("openai", "gpt-4o-mini"): ("0.15", "0.075", "0.15", "0.60", "0.60"),
    ("gemini", "gemini-2.5-flash"): ("0.30", "0.03", "0.30", "2.50", "2.50"),
    # Haiku: Sonnet 4.5 retires on 2026-11-30 (catalogue `retires`), and a retired model is refused at submit.
    ("anthropic", "claude-haiku-4-5"): ("1", "0.10", "1.25", "5", "5"),
    # Models only genai-prices' data knows (the first hand-written catalogue had none of them). gpt-5.6-sol:
    # OpenAI's price since 2026-08-21 (input -20 %, output -33 % from 5 / 30).
    ("openai", "gpt-5.6-sol"): ("4", "0.40", "5", "20", "20"),
    ("gemini", "gemini-3.5-flash"): ("1.50", "0.15", "1.50", "9", "9"),
    ("anthropic", "claude-opus-4-8"): ("5", "0.50", "6.25", "25", "25"),
}
# The first day of the dated price each bill used (None: the data's undated first price).
PRICE_DATES = {("openai", "gpt-5.6-sol"): "2026-08-21", ("openai", "gpt-5"): None,
               ("anthropic", "claude-opus-4-8"): None, ("gemini", "gemini-3.5-flash"): None}


def by_hand(provider: str, record: dict) -> dict[str, int]:
    """What one emulated response billed, from the raw figures the emulator sent."""
    prompt = record["prompt_tokens"]  # everything the model read
    cached = min(prompt, CACHED)
    writes = min(prompt - cached, CACHE_WRITE) if provider == "anthropic" else 0
    visible = record["output_tokens"] - REASONING  # the emulator's output_tokens include reasoning
    return {"input_tokens": prompt - cached - writes, "cached_input_tokens": cached, "cache_write_tokens": writes,
            "output_tokens": visible, "reasoning_tokens": REASONING}


def cost(prices: tuple[str, ...], usage: dict[str, int]) -> Decimal:
    keys = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
    total = sum(Decimal(usage[k]) * Decimal(p) for k, p in zip(keys, prices))
    return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize("provider,model", list(PRICES))
def test_total_and_task_costs_match_the_hand_computed_bill(alice_client, emulator, provider, model):
    emulator.configure(cached_tokens=CACHED, cache_write_tokens=CACHE_WRITE, reasoning_tokens=REASONING)
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": provider, "model": model, "tasks": TASKS,
    }, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["job_id"]

    work_burst()

    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished", data
    metadata = data["result"]["metadata"]
    records = emulator.requests(provider)
    assert len(records) == 2
    expected_total = Decimal(0)
    expected_usage = dict.fromkeys(("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                                    "reasoning_tokens"), 0)
    for name, prompt in TASKS.items():
        [record] = [r for r in records if prompt in str(r["body"])]
        usage = by_hand(provider, record)
        assert usage["cached_input_tokens"] == CACHED and usage["output_tokens"] > 0  # the traps are in play
        expected = cost(PRICES[(provider, model)], usage)
        task = metadata["tasks"][name]
        assert task["usage"] == usage
        assert task["cost"] == float(expected)
        assert task["tries"] == 1 and task["calls"] == 1
        assert task["price_version"] == "0.2.3"
        if (provider, model) in PRICE_DATES:
            assert task["price_date"] == PRICE_DATES[(provider, model)]
        expected_total += expected
        expected_usage = {k: expected_usage[k] + usage[k] for k in usage}
    assert metadata["total_cost"] == float(expected_total)
    assert metadata["usage"] == expected_usage
    assert isinstance(metadata["total_cost"], float)
    # Written from the Decimal's digits (8 places), never through a float ("7.71e-05"):
    raw = alice_client.get(f"/api/v1/jobs/{job_id}").content
    exact = json.loads(raw, parse_float=Decimal)["result"]["metadata"]
    assert exact["total_cost"] == expected_total.quantize(Decimal("0.00000001"))
    assert b'"total_cost":0.' in raw and not re.search(rb'"(total_cost|cost)":-?[0-9.]+[eE]', raw)


def test_retried_calls_bill_only_the_answers(alice_client, emulator):
    """A 429 is not billed: the cost is the successful call's, and tries counts both."""
    from emulator.server import faults

    emulator.add_faults(faults.rate_limit("openai", retry_after=0.1, times=1))
    job_id = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Provide a brief summary"},
    }, format="json").json()["job_id"]
    work_burst()
    metadata = alice_client.get(f"/api/v1/jobs/{job_id}").json()["result"]["metadata"]
    [answered] = [r for r in emulator.requests("openai") if r["status"] == 200]
    usage = {"input_tokens": answered["prompt_tokens"], "cached_input_tokens": 0, "cache_write_tokens": 0,
             "output_tokens": answered["output_tokens"], "reasoning_tokens": 0}
    assert metadata["tasks"]["summary"]["tries"] == 2
    assert metadata["tasks"]["summary"]["usage"] == usage
    assert metadata["total_cost"] == float(cost(PRICES[("openai", "gpt-4o-mini")], usage))
