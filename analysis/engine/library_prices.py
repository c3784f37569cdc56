"""genai-prices' price entries as the catalogue's PricePeriods: the standard prices of every period a
model has had, and its batch and flex variants (analysis/engine/catalogue_sources.py builds the catalogue with these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from analysis.engine.model_info import PricePeriod, Rates


def _rate(value: Any) -> tuple[Decimal, tuple[tuple[int, Decimal], ...]] | None:
    """A library price (Decimal or TieredPrices) as (base, ((start, price), ...)); None when absent."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value, ()
    return value.base, tuple((tier.start, tier.price) for tier in value.tiers)


def _price_at(rate: tuple[Decimal, tuple[tuple[int, Decimal], ...]], threshold: int | None) -> Decimal:
    """The price of one kind above `threshold` (None: the base)."""
    base, tiers = rate
    price = base
    if threshold is not None:
        for start, tier_price in tiers:
            if start <= threshold:
                price = tier_price
    return price


def _period(start: dt.date | None, prices: Any) -> PricePeriod | None:
    """One library ModelPrice as a PricePeriod; None when it has no text token prices.

    Where the library gives no cache-read or cache-write price, it bills those tokens as ordinary input
    (they stay in the input leaf), and so do we. Reasoning is output everywhere (no separate price).
    """
    values = {k: v for k, v in prices.__dict__.items() if v is not None and not k.startswith("_")}
    if "input_mchars" in values or "input_mtok" not in values or "output_mtok" not in values:
        return None
    inp = _rate(values["input_mtok"])
    out = _rate(values["output_mtok"])
    read = _rate(values.get("cache_read_mtok")) or inp
    write = _rate(values.get("cache_write_mtok")) or inp
    assert inp is not None and out is not None
    kinds = (inp, read, write, out, out)
    thresholds = sorted({start for _, tiers in kinds for start, _ in tiers})

    def at(threshold: int | None) -> Rates:
        return tuple(_price_at(rate, threshold) for rate in kinds)  # type: ignore[return-value]

    write_1h = _rate(values.get("cache_write_1h_mtok"))
    return PricePeriod(start=start, base=at(None), tiers=tuple((t, at(t)) for t in thresholds),
                       cache_write_1h=write_1h[0] if write_1h else None)


def library_periods(model: Any) -> tuple[PricePeriod, ...] | None:
    from genai_prices import types

    if isinstance(model.prices, types.ModelPrice):
        entries = [(None, model.prices)]
    else:
        entries = []
        for conditional in model.prices:
            constraint = conditional.constraint
            if constraint is not None and not isinstance(constraint, types.StartDateConstraint):
                return None  # time-of-day prices (off-peak): not a model of ours; bill nothing we can't price
            entries.append((constraint.start_date if constraint else None, conditional.prices))
    periods = []
    for start, prices in entries:
        period = _period(start, prices)
        if period is None:
            return None
        periods.append(period)
    # The library tries conditional prices last to first and takes the first active one: sort by start so
    # that "the latest start not after the call's day" is the same choice.
    periods.sort(key=lambda p: p.start or dt.date.min)
    return tuple(periods)


def variant_rates(model: Any, context: dict[str, str], today: dt.date) -> tuple[tuple[str, Decimal], ...]:
    """Current batch or flex prices (display only)."""
    matching = [v for v in (model.price_variants or ()) if v.when == context
                and (v.constraint is None or v.constraint.active(dt.datetime.combine(today, dt.time(), dt.UTC)))]
    if not matching:
        return ()
    prices = matching[0].prices.__dict__
    out = []
    for ours, theirs in (("input", "input_mtok"), ("cached_input", "cache_read_mtok"), ("output", "output_mtok")):
        rate = _rate(prices.get(theirs))
        if rate is not None:
            out.append((ours, rate[0]))
    return tuple(out)


def variant_periods(model: Any, context: dict[str, str]) -> tuple[PricePeriod, ...]:
    """The billing periods of a batch or flex variant: at every day a standard price or a variant starts,
    the prices genai-prices itself resolves for that context (model.get_prices: the variant's kinds replace
    the standard ones, kind by kind). Days with no matching variant in force have no period."""
    from genai_prices import types

    variants = [v for v in (model.price_variants or ()) if v.when == context]
    if not variants:
        return ()
    starts: set[dt.date | None] = {None}
    for variant in variants:
        if isinstance(variant.constraint, types.StartDateConstraint):
            starts.add(variant.constraint.start_date)
        elif variant.constraint is not None:
            return ()  # time-of-day variants: not something we bill
    if not isinstance(model.prices, types.ModelPrice):
        starts.update(c.constraint.start_date for c in model.prices
                      if isinstance(c.constraint, types.StartDateConstraint))
    periods = []
    for start in sorted(starts, key=lambda d: d or dt.date.min):
        moment = dt.datetime.combine(start or dt.date(2000, 1, 1), dt.time(), dt.UTC)
        if not any(v.constraint is None or v.constraint.active(moment) for v in variants):
            continue
        period = _period(start, model.get_prices(moment, context))
        if period is not None:
            periods.append(period)
    return tuple(periods)


def overlay_flex_periods(periods: tuple[PricePeriod, ...], flex: Mapping[str, Decimal]) -> tuple[PricePeriod, ...]:
    """Flex prices the overlay gives (kinds input, cached_input, output), put in place of the standard ones of
    every period; reasoning is output, as everywhere."""
    out = []
    for period in periods:
        inp, read, write, output, _ = period.base
        output = flex.get("output", output)
        base = (flex.get("input", inp), flex.get("cached_input", read), write, output, output)
        out.append(PricePeriod(start=period.start, base=base, cache_write_1h=period.cache_write_1h))
    return tuple(out)
