"""Cost of a call, cost estimates, and normalization of each provider's usage block.

Every expected cost is worked out by hand in the comment above it: rates are USD per million tokens.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from analysis.engine.catalogue import get_model, resolve_model
from analysis.engine.model_info import ModelInfo
from analysis.engine.pricing import cost_of, estimate_cost_range, is_above_tier, quantize_cost
from analysis.engine.providers.usage import Usage, usage_from_anthropic, usage_from_gemini, usage_from_openai

D = Decimal


def model(provider: str, name: str) -> ModelInfo:
    info = get_model(provider, name)
    assert info is not None
    return info


# ──────────────────────────────── each provider's usage block ────────────────────────────────

OPENAI_RAW = {
    "prompt_tokens": 10_000,
    "completion_tokens": 500,
    "total_tokens": 10_500,
    "prompt_tokens_details": {"cached_tokens": 4_096},
    "completion_tokens_details": {"reasoning_tokens": 100},
}

GEMINI_RAW = {
    "prompt_token_count": 12_000,
    "cached_content_token_count": 8_000,
    "candidates_token_count": 700,
    "thoughts_token_count": 1_300,
    "total_token_count": 14_000,
}

ANTHROPIC_RAW = {
    "input_tokens": 150,
    "cache_read_input_tokens": 5_000,
    "cache_creation_input_tokens": 4_200,
    "output_tokens": 800,
}


@pytest.mark.parametrize(("parse", "raw", "usage"), [
    # OpenAI's prompt count includes the cached tokens, its completion count the reasoning ones.
    pytest.param(usage_from_openai, OPENAI_RAW,
                 Usage(input_tokens=5_904, cached_input_tokens=4_096, output_tokens=400, reasoning_tokens=100),
                 id="openai-subtracts-cached-and-reasoning"),
    # Gemini's prompt count includes the cached tokens; its candidates exclude the thoughts.
    pytest.param(usage_from_gemini, GEMINI_RAW,
                 Usage(input_tokens=4_000, cached_input_tokens=8_000, output_tokens=700, reasoning_tokens=1_300),
                 id="gemini-prompt-includes-cached-candidates-exclude-thoughts"),
    pytest.param(usage_from_anthropic, ANTHROPIC_RAW,
                 Usage(input_tokens=150, cached_input_tokens=5_000, cache_write_tokens=4_200, output_tokens=800),
                 id="anthropic-fields-are-disjoint"),
])
def test_usage_becomes_disjoint_counts(parse, raw: dict, usage: Usage) -> None:
    assert parse(raw) == usage


@pytest.mark.parametrize(("provider", "name", "parse", "raw", "cost"), [
    # (5904 x 0.15 + 4096 x 0.075 + 400 x 0.60 + 100 x 0.60) / 1e6
    # = (885.6 + 307.2 + 240 + 60) / 1e6 = 1492.8 / 1e6
    pytest.param("openai", "gpt-4o-mini", usage_from_openai, OPENAI_RAW, "0.00149280", id="openai-gpt-4o-mini"),
    # (4000 x 0.30 + 8000 x 0.03 + 700 x 2.50 + 1300 x 2.50) / 1e6
    # = (1200 + 240 + 1750 + 3250) / 1e6 = 6440 / 1e6
    pytest.param("gemini", "gemini-2.5-flash", usage_from_gemini, GEMINI_RAW, "0.00644000", id="gemini-flash"),
    # (150 x 1 + 5000 x 0.10 + 4200 x 1.25 + 800 x 5) / 1e6 = (150 + 500 + 5250 + 4000) / 1e6 = 9900 / 1e6
    pytest.param("anthropic", "claude-haiku-4-5", usage_from_anthropic, ANTHROPIC_RAW, "0.00990000",
                 id="anthropic-haiku-with-cache-read-and-write"),
    # (150 x 3 + 5000 x 0.30 + 4200 x 3.75 + 800 x 15) / 1e6 = (450 + 1500 + 15750 + 12000) / 1e6 = 29700 / 1e6
    pytest.param("anthropic", "claude-sonnet-4-5", usage_from_anthropic, ANTHROPIC_RAW, "0.02970000",
                 id="anthropic-sonnet"),
])
def test_cost_of_a_call(provider: str, name: str, parse, raw: dict, cost: str) -> None:
    result = cost_of(model(provider, name), parse(raw))
    assert result == D(cost)
    assert result.as_tuple().exponent == -8  # always eight decimals


# ─────────────────────────────────────────── OpenAI ───────────────────────────────────────────


def test_openai_sdk_object() -> None:
    types = pytest.importorskip("openai.types")
    sdk_usage = types.CompletionUsage.model_validate(OPENAI_RAW)
    assert usage_from_openai(sdk_usage) == usage_from_openai(OPENAI_RAW)


def test_openai_none_fields_and_block() -> None:
    assert usage_from_openai(None) == Usage()
    assert usage_from_openai({}) == Usage()
    raw = {"prompt_tokens": 120, "completion_tokens": None, "prompt_tokens_details": None,
           "completion_tokens_details": {"reasoning_tokens": None}}
    assert usage_from_openai(raw) == Usage(input_tokens=120)
    # pydantic object with the optional details left unset
    obj = SimpleNamespace(prompt_tokens=50, completion_tokens=7, prompt_tokens_details=None,
                          completion_tokens_details=None)
    assert usage_from_openai(obj) == Usage(input_tokens=50, output_tokens=7)


def test_openai_parts_never_exceed_totals() -> None:
    # A misbehaving compatible server reporting more cached than prompt tokens must not produce negatives.
    raw = {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": 300},
           "completion_tokens_details": {"reasoning_tokens": 50}}
    assert usage_from_openai(raw) == Usage(cached_input_tokens=100, reasoning_tokens=10)


def test_openai_responses_api_names() -> None:
    raw = {"input_tokens": 2_000, "output_tokens": 300, "input_tokens_details": {"cached_tokens": 1_024},
           "output_tokens_details": {"reasoning_tokens": 200}}
    assert usage_from_openai(raw) == Usage(
        input_tokens=976, cached_input_tokens=1_024, output_tokens=100, reasoning_tokens=200
    )


def test_openai_rejects_garbage_counts() -> None:
    with pytest.raises(ValueError, match="not a number"):
        usage_from_openai({"prompt_tokens": "lots"})
    with pytest.raises(ValueError, match="boolean"):
        usage_from_openai({"prompt_tokens": True})


# ─────────────────────────────────────────── Gemini ───────────────────────────────────────────


def test_gemini_tool_use_prompt_tokens_are_input() -> None:
    raw = dict(GEMINI_RAW, tool_use_prompt_token_count=50)
    usage = usage_from_gemini(raw)
    assert usage.input_tokens == 4_050
    # 6440 + 50 x 0.30 = 6455
    assert cost_of(model("gemini", "gemini-2.5-flash"), usage) == D("0.00645500")


def test_gemini_rest_camel_case() -> None:
    raw = {"promptTokenCount": 12_000, "cachedContentTokenCount": 8_000, "candidatesTokenCount": 700,
           "thoughtsTokenCount": 1_300}
    assert usage_from_gemini(raw) == usage_from_gemini(GEMINI_RAW)


def test_gemini_sdk_object_with_none_fields() -> None:
    genai_types = pytest.importorskip("google.genai.types")
    meta = genai_types.GenerateContentResponseUsageMetadata(prompt_token_count=900, candidates_token_count=40)
    assert meta.cached_content_token_count is None and meta.thoughts_token_count is None
    assert usage_from_gemini(meta) == Usage(input_tokens=900, output_tokens=40)
    full = genai_types.GenerateContentResponseUsageMetadata(**GEMINI_RAW)
    assert usage_from_gemini(full) == usage_from_gemini(GEMINI_RAW)


def test_gemini_none_block() -> None:
    assert usage_from_gemini(None) == Usage()
    assert usage_from_gemini({"prompt_token_count": None, "candidates_token_count": None}) == Usage()


def test_gemini_pro_at_threshold_is_lower_tier() -> None:
    # Prompt exactly 200,000 (150,000 fresh + 50,000 cached): not above the threshold.
    # (150000 x 1.25 + 50000 x 0.125 + 1000 x 10 + 2000 x 10) / 1e6
    # = (187500 + 6250 + 10000 + 20000) / 1e6 = 223750 / 1e6
    info = model("gemini", "gemini-2.5-pro")
    usage = usage_from_gemini({"prompt_token_count": 200_000, "cached_content_token_count": 50_000,
                               "candidates_token_count": 1_000, "thoughts_token_count": 2_000})
    assert usage.prompt_tokens == 200_000 and not is_above_tier(info, usage.prompt_tokens)
    assert cost_of(info, usage) == D("0.22375000")


def test_gemini_pro_above_threshold_whole_call_at_upper_tier() -> None:
    # Prompt 200,001 (150,001 fresh + 50,000 cached): the whole call, thoughts included, at the upper tier.
    # (150001 x 2.50 + 50000 x 0.25 + 1000 x 15 + 2000 x 15) / 1e6
    # = (375002.5 + 12500 + 15000 + 30000) / 1e6 = 432502.5 / 1e6
    info = model("gemini", "gemini-2.5-pro")
    usage = usage_from_gemini({"prompt_token_count": 200_001, "cached_content_token_count": 50_000,
                               "candidates_token_count": 1_000, "thoughts_token_count": 2_000})
    assert is_above_tier(info, usage.prompt_tokens)
    assert cost_of(info, usage) == D("0.43250250")


def test_tier_is_per_call_not_per_job() -> None:
    # Two 150k calls: 300k tokens in all, but each call is below the threshold.
    # Each: 150000 x 1.25 / 1e6 = 0.1875
    info = model("gemini", "gemini-2.5-pro")
    call = Usage(input_tokens=150_000)
    assert cost_of(info, call) + cost_of(info, call) == D("0.37500000")
    # Summing usage first would wrongly cross the tier: 300000 x 2.50 / 1e6 = 0.75
    assert cost_of(info, call + call) == D("0.75000000")


def test_flash_has_no_tier() -> None:
    info = model("gemini", "gemini-2.5-flash")
    # 300000 x 0.30 / 1e6 = 0.09
    assert not is_above_tier(info, 300_000)
    assert cost_of(info, Usage(input_tokens=300_000)) == D("0.09000000")


# ────────────────────────────────────────── Anthropic ──────────────────────────────────────────


def test_anthropic_thinking_split_out_of_output() -> None:
    raw = dict(ANTHROPIC_RAW, output_tokens_details={"thinking_tokens": 300})
    usage = usage_from_anthropic(raw)
    assert (usage.output_tokens, usage.reasoning_tokens) == (500, 300)
    # Same rate for both, so the same cost as before the split.
    assert cost_of(model("anthropic", "claude-haiku-4-5"), usage) == D("0.00990000")


def test_anthropic_sdk_object() -> None:
    anthropic_types = pytest.importorskip("anthropic.types")
    sdk_usage = anthropic_types.Usage(input_tokens=150, output_tokens=800, cache_read_input_tokens=5_000,
                                      cache_creation_input_tokens=4_200)
    assert usage_from_anthropic(sdk_usage) == usage_from_anthropic(ANTHROPIC_RAW)
    bare = anthropic_types.Usage(input_tokens=10, output_tokens=3)  # cache fields None
    assert usage_from_anthropic(bare) == Usage(input_tokens=10, output_tokens=3)


def test_anthropic_none_block_and_fields() -> None:
    assert usage_from_anthropic(None) == Usage()
    assert usage_from_anthropic({"input_tokens": 5, "cache_read_input_tokens": None, "output_tokens": None}) == Usage(
        input_tokens=5
    )


def test_anthropic_write_breakdown_only() -> None:
    raw = {"input_tokens": 1, "output_tokens": 1,
           "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 0}}
    assert usage_from_anthropic(raw).cache_write_tokens == 2_000


# ─────────────────────────────────────────── cost_of ───────────────────────────────────────────


def test_reasoning_billed_at_reasoning_rate() -> None:
    # gpt-5: 1000 reasoning x 10 / 1e6 = 0.01
    assert cost_of(model("openai", "gpt-5"), Usage(reasoning_tokens=1_000)) == D("0.01000000")


def test_rounding_half_up_once_per_call() -> None:
    info = model("openai", "gpt-5-mini")
    # 1 cached token x 0.025 / 1e6 = 0.000000025 -> half-up 0.00000003 (banker's rounding would give ...02)
    assert cost_of(info, Usage(cached_input_tokens=1)) == D("0.00000003")
    # 3 x 0.025 = 0.000000075 -> 0.00000008; rounding each token separately would give 3 x 0.00000003
    assert cost_of(info, Usage(cached_input_tokens=3)) == D("0.00000008")
    assert quantize_cost(D("0.000000004999")) == D("0E-8")


def test_zero_usage_costs_zero() -> None:
    assert cost_of(model("openai", "gpt-4o"), Usage()) == D("0")


def test_negative_usage_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        cost_of(model("openai", "gpt-4o"), Usage(input_tokens=-1))


def test_unlisted_model_costs_zero() -> None:
    info = resolve_model("openai", "llama3.1:8b", allow_unlisted=True)
    assert cost_of(info, Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == D("0")


# ───────────────────────────────────── estimate_cost_range ─────────────────────────────────────


def test_estimate_openai() -> None:
    info = model("openai", "gpt-4o-mini")
    low, high = estimate_cost_range(info, prompt_tokens_per_call=[10_000, 500], max_output_per_call=[1_000, 1_000])
    # low:  call 1 (>= 1024, cacheable): 10000 x 0.075 + 1 x 0.60 = 750.6    -> 0.0007506
    #       call 2 (< 1024, never cached): 500 x 0.15 + 1 x 0.60 = 75.6     -> 0.0000756
    assert low == D("0.00082620")
    # high: call 1: 10000 x 0.15 + 1000 x 0.60 = 2100 -> 0.0021 ; call 2: 500 x 0.15 + 600 = 675 -> 0.000675
    assert high == D("0.00277500")


def test_estimate_anthropic_counts_cache_writes_in_the_ceiling() -> None:
    info = model("anthropic", "claude-haiku-4-5")
    low, high = estimate_cost_range(info, prompt_tokens_per_call=[5_000, 1_000], max_output_per_call=[2_000, 2_000])
    # low:  call 1 (>= 4096): 5000 x 0.10 + 1 x 5 = 505 ; call 2 (< 4096): 1000 x 1 + 5 = 1005
    assert low == D("0.00151000")
    # high: call 1 written to cache: 5000 x 1.25 + 2000 x 5 = 16250 ; call 2 not cacheable: 1000 x 1 + 10000 = 11000
    assert high == D("0.02725000")


def test_estimate_gemini_pro_upper_tier() -> None:
    info = model("gemini", "gemini-2.5-pro")
    low, high = estimate_cost_range(info, prompt_tokens_per_call=[250_000], max_output_per_call=[10_000])
    # low:  250000 x 0.25 + 1 x 15 = 62515 ; high: 250000 x 2.50 + 10000 x 15 = 775000
    assert (low, high) == (D("0.06251500"), D("0.77500000"))


def test_estimate_brackets_actual_cost() -> None:
    info = model("openai", "gpt-4o-mini")
    low, high = estimate_cost_range(info, prompt_tokens_per_call=[10_000], max_output_per_call=[500])
    actual = cost_of(info, usage_from_openai(OPENAI_RAW))
    assert low <= actual <= high


def test_estimate_empty_and_errors() -> None:
    info = model("openai", "gpt-4o")
    assert estimate_cost_range(info, prompt_tokens_per_call=[], max_output_per_call=[]) == (D(0), D(0))
    with pytest.raises(ValueError, match="one entry per call"):
        estimate_cost_range(info, prompt_tokens_per_call=[1], max_output_per_call=[])
    with pytest.raises(ValueError, match="negative"):
        estimate_cost_range(info, prompt_tokens_per_call=[-1], max_output_per_call=[1])
    # max output 0: the floor cannot assume a token that will never be produced
    assert estimate_cost_range(info, prompt_tokens_per_call=[100], max_output_per_call=[0])[0] == D("0.00025000")
