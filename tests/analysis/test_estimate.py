"""estimate_job: the calls a job will make and what they can cost, before anything runs."""

from __future__ import annotations

from decimal import Decimal

import bpe_openai
import pytest

from analysis.analyze import estimate_job, run_analysis, run_config
from analysis.engine import prompts
from analysis.engine.catalogue import get_model
from analysis.engine.planning import TaskSpec
from analysis.engine.tokens import MESSAGE_OVERHEAD_TOKENS
from analysis.serializers import JobEstimateSerializer
from tests.conftest import transcript

TASKS = [TaskSpec("summary", "Provide a brief summary"), TaskSpec("key_points", "Extract key points")]
M = Decimal(1_000_000)


def q(amount: Decimal) -> Decimal:
    # Each call's cost is rounded half-up to 8 places, as billing does.
    return amount.quantize(Decimal("0.00000001"), rounding="ROUND_HALF_UP")


def test_openai_counts_are_exact_and_the_range_is_priced_by_hand():
    text = transcript("TS3010a.txt")
    estimate = estimate_job(transcript=text, provider="openai", model="gpt-4o-mini", system_prompt="Be brief.",
                            tasks=TASKS[:1], max_output_tokens=1000)
    enc = bpe_openai.get_encoding("o200k_base")
    prompt = prompts.task_prompt(system_prompt="Be brief.", transcript=text, instruction="Provide a brief summary")
    tokens = sum(len(enc.encode_ordinary(part)) for part in (prompt.system, prompt.document, prompt.instruction))
    tokens += MESSAGE_OVERHEAD_TOKENS
    assert estimate.token_count == "exact"
    assert estimate.calls == 1 and estimate.input_tokens == tokens and estimate.input_tokens_per_call == [tokens]
    assert estimate.max_output_tokens == 1000
    # gpt-4o-mini: 0.15 input, 0.075 cached, 0.60 output per million; the prompt is over 1,024 (cacheable).
    assert estimate.cost_low == q((tokens * Decimal("0.075") + 1 * Decimal("0.60")) / M)
    assert estimate.cost_high == q((tokens * Decimal("0.15") + 1000 * Decimal("0.60")) / M)


def test_anthropic_high_bound_bills_every_prompt_as_a_cache_write():
    text = transcript("TS3010a.txt") * 3  # over claude-haiku-4-5's 4,096-token cache minimum
    estimate = estimate_job(transcript=text, provider="anthropic", model="claude-haiku-4-5", system_prompt="",
                            tasks=TASKS, max_output_tokens=None)
    assert estimate.token_count == "approximate" and estimate.calls == 2
    assert estimate.max_output_tokens == 8192  # DEFAULT_MAX_OUTPUT_TOKENS
    per_call = estimate.input_tokens_per_call
    # claude-haiku-4-5: 1.25 cache write, 0.10 cache read, 5 output per million.
    expected_high = sum(
        q((Decimal(n) * Decimal("1.25") + 8192 * Decimal(5)) / M) for n in per_call)
    expected_low = sum(q((Decimal(n) * Decimal("0.10") + Decimal(5)) / M) for n in per_call)
    assert estimate.cost_high == expected_high
    assert estimate.cost_low == expected_low
    data = JobEstimateSerializer(estimate).data  # what POST jobs/estimate answers
    assert data["cost_low"] == expected_low and data["calls"] == 2
    assert set(data["tasks"]) == {"summary", "key_points"}


def test_max_output_is_capped_at_the_models_limit():
    estimate = estimate_job(transcript="A: hello", provider="openai", model="gpt-4o", system_prompt="",
                            tasks=TASKS[:1], max_output_tokens=999_999)
    assert estimate.max_output_tokens == get_model("openai", "gpt-4o").max_output_tokens == 16_384


@pytest.mark.django_db
def test_chunked_estimate_plans_the_calls_the_run_makes(settings, emulator):
    """Over the effective context the estimate counts map + reduce calls, as many as the Runner then makes."""
    settings.MAX_PROMPT_TOKENS = 1500
    text = transcript("TS3010a.txt")
    estimate = estimate_job(transcript=text, provider="openai", model="gpt-4o-mini", system_prompt="",
                            tasks=TASKS, max_output_tokens=100)
    assert all(t.chunks >= 2 for t in estimate.tasks)
    assert [t.calls for t in estimate.tasks] == [t.chunks + 1 for t in estimate.tasks]
    assert max(estimate.input_tokens_per_call) <= 1500

    config = run_config(provider="openai", model="gpt-4o-mini", max_output_tokens=100)
    outcomes = run_analysis(transcript=text, config=config, tasks=TASKS)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert {o.name: (o.calls, o.chunks) for o in outcomes} == {t.name: (t.calls, t.chunks) for t in estimate.tasks}
    assert len(emulator.requests("openai")) == estimate.calls


def test_unlisted_model_is_estimated_at_zero_with_a_note(settings):
    settings.ALLOW_UNLISTED_MODELS = True
    estimate = estimate_job(transcript="A: hi", provider="openai", model="llama3.1:8b", system_prompt="",
                            tasks=TASKS[:1], max_output_tokens=None)
    data = JobEstimateSerializer(estimate).data
    assert data["cost_low"] == data["cost_high"] == 0
    assert data["price_unknown"] is True and "llama3.1:8b" in data["note"]
    assert data["token_count"] == "approximate"
