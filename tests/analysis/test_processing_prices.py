"""Batch and flex prices, kind by kind: each token kind at its batch (flex) rate where the price data has one,
at its standard rate where it has none; checked by hand per provider and against genai-prices for every model."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest

from analysis.engine.catalogue import get_model, list_models
from analysis.engine.catalogue_sources import LIBRARY_PROVIDER
from analysis.engine.pricing import cost_of, library_usage, quantize_cost
from analysis.engine.processing import mode_refusal
from analysis.engine.providers.usage import Usage

AT = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
USAGE = Usage(input_tokens=1_000, cached_input_tokens=2_000, cache_write_tokens=400, output_tokens=500,
              reasoning_tokens=100)


def test_openai_batch_bills_cache_reads_at_the_standard_rate_where_batch_has_none():
    info = get_model("openai", "gpt-4o-mini")
    # genai-prices' batch variant of gpt-4o-mini gives input 0.075 and output 0.30 only: cache reads stay at the
    # standard 0.075; a cache write (OpenAI has none) is input, at the batch input rate.
    # 1,000 x 0.075 + 2,000 x 0.075 + 400 x 0.075 + 500 x 0.30 + 100 x 0.30 = 75 + 150 + 30 + 150 + 30 = 435
    assert cost_of(info, USAGE, at=AT, processing="batch") == D("0.00043500")
    # standard: 1,000 x 0.15 + 2,000 x 0.075 + 400 x 0.15 + 600 x 0.60 = 150 + 150 + 60 + 360 = 720
    assert cost_of(info, USAGE, at=AT) == D("0.00072000")


def test_anthropic_batch_halves_every_kind():
    info = get_model("anthropic", "claude-haiku-4-5")
    # 1,000 x 0.50 + 2,000 x 0.05 + 400 x 0.625 + 600 x 2.50 = 500 + 100 + 250 + 1,500 = 2,350
    assert cost_of(info, USAGE, at=AT, processing="batch") == D("0.00235000")
    assert cost_of(info, USAGE, at=AT) == D("0.00470000")  # exactly twice


def test_gemini_batch_keeps_the_standard_cache_read_rate():
    info = get_model("gemini", "gemini-2.5-flash")
    # batch: input 0.15, output 1.25; cache reads 0.03 (standard, no batch rate); writes are input.
    # 1,000 x 0.15 + 2,000 x 0.03 + 400 x 0.15 + 600 x 1.25 = 150 + 60 + 60 + 750 = 1,020
    assert cost_of(info, USAGE, at=AT, processing="batch") == D("0.00102000")


def test_flex_prices_openai_and_the_overlay_for_gemini():
    # gpt-5-mini flex: 0.125 / 0.0125 / 1.00: 1,000 x 0.125 + 2,000 x 0.0125 + 400 x 0.125 + 600 x 1 = 800
    assert cost_of(get_model("openai", "gpt-5-mini"), USAGE, at=AT, processing="flex") == D("0.00080000")
    # gemini-3.5-flash: the overlay's flex 0.75 / 0.075 / 4.50, cache writes at the standard input 1.50:
    # 750 + 150 + 600 + 2,700 = 4,200
    assert cost_of(get_model("gemini", "gemini-3.5-flash"), USAGE, at=AT, processing="flex") == D("0.00420000")


def test_a_batch_call_before_the_batch_price_existed_has_no_price():
    # genai-prices' batch variants start on 2026-10-14: a batch billed before would be a guess.
    with pytest.raises(ValueError, match="no batch price"):
        cost_of(get_model("openai", "gpt-4o-mini"), USAGE, at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
                processing="batch")


@pytest.mark.parametrize("provider,model,processing,refused", [
    ("anthropic", "claude-haiku-4-5", "flex", "Anthropic offers no flex"),
    ("openai", "gpt-4o-mini", "flex", "no flex price"),
    ("gemini", "gemini-3.5-flash", "batch", "no batch price"),
    ("openai", "gpt-4o-mini", "batch", None),
    ("gemini", "gemini-2.5-flash", "batch", None),
    ("anthropic", "claude-haiku-4-5", "batch", None),
    ("openai", "gpt-5-mini", "flex", None),
])
def test_which_modes_each_model_offers(provider, model, processing, refused):
    refusal = mode_refusal(provider=provider, info=get_model(provider, model), processing=processing)
    assert (refusal is None) if refused is None else (refused in refusal)


def test_every_model_agrees_with_genai_prices_in_batch_and_flex():
    from genai_prices import calc_price

    rng = random.Random(23)
    moments = [dt.datetime(2026, 10, 20, tzinfo=dt.UTC), AT, dt.datetime(2027, 2, 1, tzinfo=dt.UTC)]
    checked = 0
    for info in list_models():
        for processing, context in (("batch", {"processing": "batch"}), ("flex", {"service_tier": "flex"})):
            if not info.flex_periods if processing == "flex" else not info.batch_periods:
                continue
            if processing == "flex" and "flex" in " ".join(info.overlay_sources):
                continue  # the overlay's own flex price, which the library does not have
            for _ in range(4):
                usage = Usage(input_tokens=rng.randint(0, 300_000), cached_input_tokens=rng.choice([0, 50_000]),
                              cache_write_tokens=rng.choice([0, 20_000]) if info.provider == "anthropic" else 0,
                              output_tokens=rng.randint(0, 20_000), reasoning_tokens=rng.choice([0, 3_000]))
                at = rng.choice(moments)
                if not info.offers(processing, at):
                    continue
                theirs = calc_price(library_usage(usage), info.name, provider_id=LIBRARY_PROVIDER[info.provider],
                                    genai_request_timestamp=at, price_context=context).total_price
                assert cost_of(info, usage, at=at, processing=processing) == quantize_cost(theirs), (
                    info.name, processing, usage, at)
                checked += 1
    assert checked > 100
