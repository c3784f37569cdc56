"""What a provider call costs: cost_of prices one call, estimate_cost_range bounds a job before it runs.

The usage priced here is the providers' own, already normalized (analysis/engine/providers/usage.py): its five
counts never overlap, so each meets its own rate once.

Money is Decimal throughout. A call's cost is rounded once, at the end, to 8 decimal places (the precision the
API renders); a job's cost is the sum of its calls' rounded costs, so the figures shown per task always add
up to the job total.
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import ROUND_HALF_UP, Decimal
from operator import attrgetter
from typing import Any

from analysis.engine.model_info import ModelInfo, PricePeriod
from analysis.engine.providers import PROVIDER_NAMES
from analysis.engine.providers.usage import USAGE_KEYS, Usage

COST_QUANTUM = Decimal("0.00000001")  # 8 decimal places of a US dollar
_PER_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
# Enough digits for any realistic token count times any price, independent of whatever global decimal
# context the caller may have set.
_CONTEXT = decimal.Context(prec=40, rounding=ROUND_HALF_UP)
# A call's five token counts, in the order of a price's rates (Usage's field order).
_counts = attrgetter(*USAGE_KEYS)


def quantize_cost(amount: Decimal) -> Decimal:
    return amount.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP, context=_CONTEXT)


def price_unknown_note(provider: str, model: str) -> str:
    """Why a cost of 0 is not "free": the `note` beside `price_unknown` in a job's or an estimate's metadata."""
    if provider not in PROVIDER_NAMES:
        return f"{model} has no price configured on endpoint {provider}: counted as 0."
    return f"{model} is not in the model catalogue: its price is unknown and counted as 0."


def is_above_tier(info: ModelInfo, prompt_tokens: int, *, at: dt.datetime | dt.date | None = None) -> bool:
    """Whether one request of `prompt_tokens` (cached ones included) is billed at a long-prompt tier.

    The tier is decided per request: Google prices a gemini-2.5-pro call by that call's prompt size, so a
    job of ten 150k-token calls never reaches it even though it reads 1.5M tokens.
    """
    period = info.period_at(at)
    return period.rates_for(prompt_tokens) is not period.base


def price_call(info: ModelInfo, usage: Usage, *, at: dt.datetime | dt.date | None = None,
               processing: str = "standard") -> tuple[Decimal, PricePeriod]:
    """(USD cost of ONE provider call, the price period it was billed at).

    `at` is the call's time (UTC; None: now): the price in force that day applies (genai-prices' price
    history, precomputed into info.periods at start-up). The long-prompt tier is chosen by this call's own
    prompt size. `processing` (standard, batch, flex) picks the model's prices for that mode: a batch call is
    billed at the batch rates in force when its batch was submitted. Our Usage counts are exclusive (input_tokens has no cache reads or writes in it,
    output_tokens no reasoning), so each count meets its own rate once; see library_usage for the mapping to
    genai-prices' totals.
    """
    counts = _counts(usage)
    if any(n < 0 for n in counts):
        raise ValueError(f"negative token count in {usage!r}")
    period = info.period_at(at, processing)
    rates = period.rates_for(usage.prompt_tokens)
    total = _ZERO
    for n, rate in zip(counts, rates, strict=True):
        if n:
            total = _CONTEXT.fma(Decimal(n), rate, total)
    return quantize_cost(_CONTEXT.divide(total, _PER_MILLION)), period


def cost_of(info: ModelInfo, usage: Usage, *, at: dt.datetime | dt.date | None = None,
            processing: str = "standard") -> Decimal:
    """USD cost of ONE provider call, rounded half-up to 8 places.

    Pass one call's usage, never a sum over calls: the long-prompt tier depends on the single request's
    prompt size. Callers add up the per-call results.
    """
    return price_call(info, usage, at=at, processing=processing)[0]


def library_usage(usage: Usage) -> Any:
    """Our exclusive Usage as genai-prices counts it (totals), for calc_price.

    genai-prices' input_tokens INCLUDES cache reads and cache writes, and its output_tokens INCLUDES reasoning
    (given again as output_reasoning_tokens, which it does not price separately). Passing our exclusive
    counts unchanged would bill cache reads and writes at the cache rates MINUS the input rate (the library
    subtracts them from input_tokens) and leave reasoning unbilled.
    """
    from genai_prices import Usage as LibraryUsage

    return LibraryUsage(
        input_tokens=usage.prompt_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens + usage.reasoning_tokens,
    )


def estimate_cost_range(
    info: ModelInfo,
    *,
    prompt_tokens_per_call: list[int],
    max_output_per_call: list[int],
    processing: str = "standard",
) -> tuple[Decimal, Decimal]:
    """(lowest, highest) USD a set of planned calls can cost; the lists are per call, in step.

    Lowest: every call's whole prompt is a cache read (cached_input rate), if the prompt is at least the
    model's min_cache_tokens (below it the provider caches nothing, so it is billed at the input rate), and
    each call produces a single output token. Cached reads are the cheapest rate any input token can be
    billed at, and a call with a result emits at least one token; zero output would make the floor
    meaningless. The unavoidable first cache write is not counted, because a cache warmed by an earlier
    job (within its TTL) makes every call a read.

    Highest: nothing is read from cache; every prompt token is billed at the dearer of the input and the
    cache-write price (with Anthropic cache_control every miss is a write at 1.25x input; elsewhere a write
    costs what input does), and every call spends its full max output at the dearer of the output and
    reasoning rates.

    Both bounds price each call separately, with the long-prompt tier where that call's prompt exceeds the
    threshold, and round per call exactly as cost_of does, so actual costs fall inside the range.
    """
    if len(prompt_tokens_per_call) != len(max_output_per_call):
        raise ValueError("prompt_tokens_per_call and max_output_per_call must have one entry per call")
    low = high = Decimal(0)
    for prompt, max_output in zip(prompt_tokens_per_call, max_output_per_call, strict=True):
        if prompt < 0 or max_output < 0:
            raise ValueError("token counts must not be negative")
        cacheable = info.min_cache_tokens is None or prompt >= info.min_cache_tokens
        if cacheable and info.cached_input < info.input:
            low_usage = Usage(cached_input_tokens=prompt, output_tokens=min(1, max_output))
        else:
            low_usage = Usage(input_tokens=prompt, output_tokens=min(1, max_output))
        low += cost_of(info, low_usage, processing=processing)

        write_dearer = cacheable and info.cache_write > info.input
        reasoning_dearer = info.reasoning > info.output
        high_usage = Usage(
            input_tokens=0 if write_dearer else prompt,
            cache_write_tokens=prompt if write_dearer else 0,
            output_tokens=0 if reasoning_dearer else max_output,
            reasoning_tokens=max_output if reasoning_dearer else 0,
        )
        high += cost_of(info, high_usage, processing=processing)
    return low, high
