"""Costs of the models only genai-prices' data knows, by hand, from each provider's own usage block.

Every expected figure is computed in the comment above it from the provider's published prices (USD per
million tokens, typed in here, not read from the catalogue) and the raw usage block as the provider sends it.
Then: the mapping of our exclusive counts to genai-prices' totals, price history, and that a call is priced from
the precomputed rates.
"""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal

import pytest

from analysis.engine.catalogue import get_model, prices_version
from analysis.engine.pricing import cost_of, library_usage, price_call
from analysis.engine.providers.usage import Usage, usage_from_anthropic, usage_from_gemini, usage_from_openai

D = Decimal
TODAY = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def model(provider: str, name: str):
    info = get_model(provider, name)
    assert info is not None, name
    return info


# The providers' published prices, USD per million tokens:
# - OpenAI: gpt-5.6-sol since 2026-08-21: input 4, cached 0.40, cache write 5, output 20; above 272k prompt
#   tokens 8 / 0.80 / 10 / 30. gpt-5.4: 2.50 / 0.25 / - / 15; above 272k 5 / 0.50 / 22.50.
# - Anthropic: claude-opus-4-8: input 5, cache read 0.50, cache write (5 min) 6.25, output 25.
#   claude-sonnet-4-6 before 2026-03-13: 3 / 0.30 / 3.75 / 15, above 200k 6 / 0.60 / 7.50 / 22.50; from then on
#   one flat price (3 / 0.30 / 3.75 / 15) whatever the prompt size.
# - Gemini: gemini-3.5-flash: input 1.50, cached 0.15, output 9 (thoughts are output).
#   gemini-3.1-pro-preview: 2 / 0.20 / 12, above 200k prompt tokens 4 / 0.40 / 18.


# ─────────────────────────────── a call, from the provider's usage block ───────────────────────────────


@pytest.mark.parametrize(("provider", "name", "parse", "raw", "cost"), [
    # uncached 8,000 x 4 = 32,000; cached 12,000 x 0.40 = 4,800; visible 500 x 20 = 10,000;
    # reasoning 1,000 x 20 = 20,000 -> 66,800 / 1e6
    pytest.param("openai", "gpt-5.6-sol", usage_from_openai,
                 {"prompt_tokens": 20_000, "completion_tokens": 1_500,
                  "prompt_tokens_details": {"cached_tokens": 12_000},
                  "completion_tokens_details": {"reasoning_tokens": 1_000}},
                 "0.06680000", id="openai-cached-and-reasoning"),
    # uncached 10,000 x 1.5 = 15,000; cached 40,000 x 0.15 = 6,000; 800 x 9 = 7,200; thoughts 1,200 x 9 = 10,800
    # -> 39,000 / 1e6
    pytest.param("gemini", "gemini-3.5-flash", usage_from_gemini,
                 {"promptTokenCount": 50_000, "cachedContentTokenCount": 40_000, "candidatesTokenCount": 800,
                  "thoughtsTokenCount": 1_200},
                 "0.03900000", id="gemini-cached-and-thinking"),
    # 250,000 > 200,000: 200,000 x 4 + 50,000 x 0.4 + 1,000 x 18 + 500 x 18 = 800,000 + 20,000 + 18,000 + 9,000
    # = 847,000 / 1e6
    pytest.param("gemini", "gemini-3.1-pro-preview", usage_from_gemini,
                 {"promptTokenCount": 250_000, "cachedContentTokenCount": 50_000, "candidatesTokenCount": 1_000,
                  "thoughtsTokenCount": 500},
                 "0.84700000", id="gemini-pro-long-prompt-tier"),
])
def test_a_new_model_call_priced_from_its_usage_block(provider: str, name: str, parse, raw: dict, cost: str) -> None:
    assert cost_of(model(provider, name), parse(raw), at=TODAY) == D(cost)


@pytest.mark.parametrize(("provider", "name", "usage", "cost"), [
    # An OpenAI-compatible usage block does not report writes; a Usage that has them is billed at 5 (1.25x).
    # 1,000 x 4 + 4,000 x 5 + 100 x 20 = 4,000 + 20,000 + 2,000 = 26,000 / 1e6
    pytest.param("openai", "gpt-5.6-sol", Usage(input_tokens=1_000, cache_write_tokens=4_000, output_tokens=100),
                 "0.02600000", id="openai-bills-a-write"),
    # Gemini's implicit cache bills no separate write: a written token costs what input does (1.50).
    # 4,000 x 1.5 + 10 x 9 = 6,000 + 90 = 6,090 / 1e6
    pytest.param("gemini", "gemini-3.5-flash", Usage(input_tokens=1_000, cache_write_tokens=3_000, output_tokens=10),
                 "0.00609000", id="gemini-bills-a-write-as-input"),
])
def test_a_cache_write(provider: str, name: str, usage: Usage, cost: str) -> None:
    assert cost_of(model(provider, name), usage, at=TODAY) == D(cost)


# ─────────────────────────────────────────── OpenAI ───────────────────────────────────────────


def test_openai_long_prompt_tier_per_request() -> None:
    raw = {"prompt_tokens": 300_000, "completion_tokens": 2_000, "prompt_tokens_details": {"cached_tokens": 100_000}}
    usage = usage_from_openai(raw)
    # prompt 300,000 > 272,000: the whole request at the upper tier.
    # 200,000 x 5 = 1,000,000; 100,000 x 0.50 = 50,000; 2,000 x 22.50 = 45,000 -> 1,095,000 / 1e6
    assert cost_of(model("openai", "gpt-5.4"), usage, at=TODAY) == D("1.09500000")
    # 272,000 exactly is not above the threshold: 172,000 x 2.5 + 100,000 x 0.25 + 2,000 x 15
    # = 430,000 + 25,000 + 30,000 = 485,000 / 1e6
    at_threshold = usage_from_openai({**raw, "prompt_tokens": 272_000})
    assert cost_of(model("openai", "gpt-5.4"), at_threshold, at=TODAY) == D("0.48500000")


# ─────────────────────────────────────────── Anthropic ───────────────────────────────────────────


def test_anthropic_new_model_cache_read_write_and_thinking() -> None:
    raw = {"input_tokens": 2_000, "cache_read_input_tokens": 30_000, "cache_creation_input_tokens": 8_000,
           "output_tokens": 3_000, "output_tokens_details": {"thinking_tokens": 2_000}}
    usage = usage_from_anthropic(raw)
    assert usage == Usage(input_tokens=2_000, cached_input_tokens=30_000, cache_write_tokens=8_000,
                          output_tokens=1_000, reasoning_tokens=2_000)
    # 2,000 x 5 = 10,000; 30,000 x 0.5 = 15,000; 8,000 x 6.25 = 50,000; 1,000 x 25 = 25,000;
    # 2,000 x 25 = 50,000 -> 150,000 / 1e6
    assert cost_of(model("anthropic", "claude-opus-4-8"), usage, at=TODAY) == D("0.15000000")


def test_anthropic_long_prompt_tier_then_the_flat_price_from_its_date() -> None:
    raw = {"input_tokens": 150_000, "cache_read_input_tokens": 60_000, "cache_creation_input_tokens": 0,
           "output_tokens": 1_000}
    usage = usage_from_anthropic(raw)
    info = model("anthropic", "claude-sonnet-4-6")
    # Before 2026-03-13, prompt 210,000 > 200,000: 150,000 x 6 + 60,000 x 0.6 + 1,000 x 22.5
    # = 900,000 + 36,000 + 22,500 = 958,500 / 1e6
    before = dt.datetime(2026, 3, 12, 23, 59, tzinfo=dt.UTC)
    assert cost_of(info, usage, at=before) == D("0.95850000")
    # From 2026-03-13 (UTC day): 150,000 x 3 + 60,000 x 0.3 + 1,000 x 15 = 450,000 + 18,000 + 15,000 = 483,000
    after = dt.datetime(2026, 3, 13, 0, 0, tzinfo=dt.UTC)
    cost, period = price_call(info, usage, at=after)
    assert cost == D("0.48300000") and period.start == dt.date(2026, 3, 13)


# ─────────────────────────────── the mapping, price history, speed ───────────────────────────────


def test_exclusive_counts_must_be_added_back_for_genai_prices() -> None:
    """genai-prices counts input_tokens and output_tokens as totals; ours are exclusive."""
    from genai_prices import Usage as LibraryUsage
    from genai_prices import calc_price

    usage = Usage(input_tokens=2_000, cached_input_tokens=30_000, cache_write_tokens=8_000, output_tokens=1_000,
                  reasoning_tokens=2_000)
    ours = cost_of(model("anthropic", "claude-opus-4-8"), usage, at=TODAY)
    assert ours == D("0.15000000")  # by hand above
    mapped = calc_price(library_usage(usage), "claude-opus-4-8", provider_id="anthropic", genai_request_timestamp=TODAY)
    assert mapped.total_price == ours
    # Our exclusive counts passed as they are: the library takes input_tokens as the total and finds cache reads
    # and writes (38,000) above it, and bills reasoning nowhere.
    naive = LibraryUsage(input_tokens=usage.input_tokens, cache_read_tokens=usage.cached_input_tokens,
                         cache_write_tokens=usage.cache_write_tokens, output_tokens=usage.output_tokens)
    with pytest.raises(ValueError, match="exceed"):
        calc_price(naive, "claude-opus-4-8", provider_id="anthropic", genai_request_timestamp=TODAY)
    # Without cache tokens the library accepts it, and the bill misses the reasoning: 2,000 x 5 + 1,000 x 25
    # = 35,000 / 1e6 instead of 2,000 x 5 + 3,000 x 25 = 85,000 / 1e6.
    plain = Usage(input_tokens=2_000, output_tokens=1_000, reasoning_tokens=2_000)
    wrong = calc_price(LibraryUsage(input_tokens=2_000, output_tokens=1_000), "claude-opus-4-8",
                       provider_id="anthropic", genai_request_timestamp=TODAY).total_price
    assert wrong == D("0.035") and cost_of(model("anthropic", "claude-opus-4-8"), plain, at=TODAY) == D("0.08500000")


def test_a_price_change_applies_from_its_date() -> None:
    # gemini-3.7-flash: 0.75 / 0.075 / 3.75 until 2026-12-31, then 1.50 / 0.15 / 7.50 from 2027-01-01 (UTC).
    info = model("gemini", "gemini-3.7-flash")
    usage = Usage(input_tokens=100_000, cached_input_tokens=100_000, output_tokens=10_000)
    last_day = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    # 100,000 x 0.75 + 100,000 x 0.075 + 10,000 x 3.75 = 75,000 + 7,500 + 37,500 = 120,000 / 1e6
    cost, period = price_call(info, usage, at=last_day)
    assert cost == D("0.12000000") and period.start is None
    # a time in another zone that is already 2027-01-01 in UTC
    first_day = dt.datetime(2026, 12, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    cost, period = price_call(info, usage, at=first_day)
    assert cost == D("0.24000000") and period.start == dt.date(2027, 1, 1)
    assert info.price_date == ""  # today (2026-12) the undated first price is in force


def test_every_model_agrees_with_genai_prices_at_every_date() -> None:
    """The precomputed rates are the library's: same cost for many usages and dates (tiers, history)."""
    import random

    from genai_prices import calc_price

    from analysis.engine.catalogue import list_models
    from analysis.engine.catalogue_sources import LIBRARY_PROVIDER
    from analysis.engine.pricing import quantize_cost

    rng = random.Random(17)
    moments = [dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 13, tzinfo=dt.UTC),
               dt.datetime(2026, 8, 20, 23, tzinfo=dt.UTC), TODAY, dt.datetime(2027, 2, 1, tzinfo=dt.UTC)]
    for info in list_models():
        for _ in range(8):
            usage = Usage(input_tokens=rng.randint(0, 300_000), cached_input_tokens=rng.choice([0, rng.randint(0, 99_000)]),
                          cache_write_tokens=rng.choice([0, rng.randint(0, 50_000)]),
                          output_tokens=rng.randint(0, 20_000), reasoning_tokens=rng.choice([0, rng.randint(0, 9_000)]))
            at = rng.choice(moments)
            theirs = calc_price(library_usage(usage), info.name, provider_id=LIBRARY_PROVIDER[info.provider],
                                genai_request_timestamp=at).total_price
            assert cost_of(info, usage, at=at) == quantize_cost(theirs), (info.name, usage, at)


def test_pricing_a_call_reads_the_precomputed_rates(monkeypatch) -> None:
    # How fast that is: the `price lookup` row of bench/ (timing belongs to the benchmarks, not the suite).
    import genai_prices

    info = model("openai", "gpt-5.6-sol")
    usage = Usage(input_tokens=8_000, cached_input_tokens=12_000, output_tokens=500, reasoning_tokens=1_000)
    expected = cost_of(info, usage)

    def refuse(*args, **kwargs):
        raise AssertionError("cost_of went through genai-prices' calc_price")

    monkeypatch.setattr(genai_prices, "calc_price", refuse)
    assert cost_of(info, usage) == expected > 0


def test_building_the_catalogue_makes_no_network_request(monkeypatch) -> None:
    """The bundled data only: no updater, no download, whatever the environment."""
    from analysis.engine.catalogue import CATALOGUE_PATH
    from analysis.engine.catalogue_sources import build_catalogue, parse_overlay

    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading prices")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    built, _ = build_catalogue(parse_overlay(CATALOGUE_PATH.read_text()))
    assert built["openai"]["gpt-5.1"].input == D("1.25")
    from genai_prices import data_snapshot

    assert data_snapshot._custom_snapshot is None  # no UpdatePrices ever installed a downloaded snapshot
    assert prices_version() == "0.2.3"
