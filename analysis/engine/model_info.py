"""What the service knows of one model: its limits and its prices (`ModelInfo`), and the price periods
that bill a call (`PricePeriod`). Plain frozen data, built by analysis/engine/catalogue_sources.py (catalogue
models) and by simple_model (endpoints, unlisted models); priced by analysis/engine/pricing.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# What a model missing from the catalogue is assumed to be when ALLOW_UNLISTED_MODELS is on (a local Ollama or
# vLLM model behind OPENAI_BASE_URL, typically). 128k / 4k are what most current open models accept; a
# smaller model should be declared with MODEL_CONTEXT_OVERRIDES, which resolve_model() applies.
UNLISTED_CONTEXT_WINDOW: int = 128_000
UNLISTED_MAX_OUTPUT_TOKENS: int = 4_096

_ZERO = Decimal(0)
# The kinds of price, in the order of every Rates tuple (the order of Usage's counts), USD per million tokens.
RATE_KINDS: tuple[str, ...] = ("input", "cached_input", "cache_write", "output", "reasoning")
Rates = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _day_of(when: dt.datetime | dt.date | None) -> dt.date:
    if when is None:
        return utc_today()
    if isinstance(when, dt.datetime):
        return (when.astimezone(dt.UTC) if when.tzinfo is not None else when).date()
    return when


def period_in_force(periods: tuple[PricePeriod, ...], day: dt.date) -> PricePeriod:
    """The period of a non-empty price history (oldest first) in force on `day`."""
    for period in reversed(periods):
        if period.start is None or period.start <= day:
            return period
    return periods[0]


@dataclass(frozen=True)
class PricePeriod:
    """The prices of one model from `start` (a UTC day; None: from the beginning of the data) on.

    `tiers` are long-prompt tiers: (threshold, rates), ascending. A request whose prompt (cached and written
    tokens included) is MORE than a threshold is billed wholly at that tier's rates (the providers' "cliff"
    pricing, as genai-prices models it).
    """

    start: dt.date | None
    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    cache_write_1h: Decimal | None = None  # reference only: writes are billed at the 5-minute price

    def rates_for(self, prompt_tokens: int) -> Rates:
        for threshold, rates in reversed(self.tiers):
            if prompt_tokens > threshold:
                return rates
        return self.base


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    name: str  # the id sent to the provider and reported: the catalogue id, or the exact alias requested
    context_window: int  # most prompt tokens per request (an input cap where the provider has one)
    max_output_tokens: int  # most generated tokens per call, reasoning included
    # The prices in force now (display, estimates), USD per million tokens. Bills use `periods`.
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    # The first long-prompt tier in force now: all None, or all set.
    tier_threshold: int | None
    input_above: Decimal | None
    cached_input_above: Decimal | None
    output_above: Decimal | None
    reasoning_model: bool
    min_cache_tokens: int | None
    price_source: str
    price_date: str  # the start of the price in force now ("" when the data gives the price no start date)
    # False for a model whose price is unknown (ALLOW_UNLISTED_MODELS, an endpoint without prices): its zero
    # prices are unknown, not free.
    listed: bool = True
    cache_write_1h: Decimal | None = None  # reference only; writes are billed at the 5-minute price
    aliases: tuple[str, ...] = ()
    # The provider's announced end of life: served until that day, refused after it.
    retires_on: dt.date | None = None
    cache_write_above: Decimal | None = None
    # Price history, oldest first; pricing.cost_of picks the one in force at the call's time.
    periods: tuple[PricePeriod, ...] = ()
    id: str = ""  # the catalogue id the name resolved to ("" = name)
    total_context: int | None = None  # the model's whole context, when an input cap is lower
    accepts_temperature: bool = True
    # Whether the model takes a JSON Schema through its provider's structured-output field (a task with a schema
    # or citations needs it).
    structured_output: bool = True
    deprecated: bool = False  # flagged deprecated (still served) in genai-prices
    display_name: str = ""
    overlay_sources: tuple[str, ...] = ()  # where each overlay figure for this model came from
    flex: tuple[tuple[str, Decimal], ...] = ()  # flex prices (display): (kind, USD per million)
    batch: tuple[tuple[str, Decimal], ...] = ()  # batch prices (display)
    # What bills batch and flex calls: price periods as `periods`, each the standard prices with the
    # variant's kinds put in their place (a kind the variant lacks keeps its standard rate, as genai-prices
    # resolves variants). Empty: the model has no such price, and that mode is refused at submit.
    batch_periods: tuple[PricePeriod, ...] = ()
    flex_periods: tuple[PricePeriod, ...] = ()

    def retired(self, today: dt.date) -> bool:
        return self.retires_on is not None and today > self.retires_on

    @property
    def catalogue_id(self) -> str:
        return self.id or self.name

    def period_at(self, when: dt.datetime | dt.date | None = None, processing: str = "standard") -> PricePeriod:
        """The price period in force at `when` (a UTC time or day; None: now), for `processing`
        (standard, batch, flex). A batch or flex price not in force at `when` is a ValueError: such a call
        must never be billed at a price the provider did not ask."""
        if processing != "standard":
            period = self._mode_period(processing, when)
            if period is None:
                raise ValueError(f"{self.name} has no {processing} price on {_day_of(when).isoformat()}")
            return period
        periods = self.periods
        if len(periods) == 1:
            return periods[0]
        if not periods:
            return _period_from_fields(self)
        return period_in_force(periods, _day_of(when))

    def offers(self, processing: str, when: dt.datetime | dt.date | None = None) -> bool:
        """Whether a call in this processing mode has a price at `when` (None: now)."""
        return processing == "standard" or self._mode_period(processing, when) is not None

    def _mode_period(self, processing: str, when: dt.datetime | dt.date | None) -> PricePeriod | None:
        periods = self.batch_periods if processing == "batch" else self.flex_periods
        day = _day_of(when)
        # Unlike the standard history, a mode has no price before its first period (it did not exist).
        started = [p for p in periods if p.start is None or p.start <= day]
        return started[-1] if started else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description for GET /api/v1/models.

        Prices become floats: this is for display, and floats render as JSON numbers. Money is never
        computed from this dict (pricing.cost_of works on the Decimals).
        """

        def num(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        def rates(r: Rates) -> dict[str, float]:
            return dict(zip(RATE_KINDS, map(float, r), strict=True))

        current = self.period_at()
        return {
            "provider": self.provider,
            "name": self.name,
            "display_name": self.display_name or None,
            "aliases": list(self.aliases),
            "listed": self.listed,
            "price_unknown": not self.listed,
            "context_window": self.context_window,
            "total_context": self.total_context,
            "max_output_tokens": self.max_output_tokens,
            "reasoning_model": self.reasoning_model,
            "accepts_temperature": self.accepts_temperature,
            "structured_output": self.structured_output,
            "min_cache_tokens": self.min_cache_tokens,
            "price_unit": "USD per million tokens",
            "input": num(self.input),
            "cached_input": num(self.cached_input),
            "cache_write": num(self.cache_write),
            "cache_write_1h": num(self.cache_write_1h),
            "output": num(self.output),
            "reasoning": num(self.reasoning),
            "tier_threshold": self.tier_threshold,
            "input_above": num(self.input_above),
            "cached_input_above": num(self.cached_input_above),
            "output_above": num(self.output_above),
            "tiers": [{"above": threshold, **rates(r)} for threshold, r in current.tiers],
            "flex": {k: float(v) for k, v in self.flex} or None,
            "batch": {k: float(v) for k, v in self.batch} or None,
            "price_source": self.price_source,
            "price_date": self.price_date,
            "deprecated": self.deprecated,
            "retires_on": self.retires_on.isoformat() if self.retires_on else None,
            "sources": list(self.overlay_sources),
        }


def _period_from_fields(info: ModelInfo) -> PricePeriod:
    tiers: tuple[tuple[int, Rates], ...] = ()
    if info.tier_threshold is not None:
        assert info.input_above is not None and info.cached_input_above is not None and info.output_above is not None
        tiers = ((info.tier_threshold, (info.input_above, info.cached_input_above,
                                        info.cache_write_above if info.cache_write_above is not None else info.input_above,
                                        info.output_above, info.output_above)),)
    return PricePeriod(start=None, base=(info.input, info.cached_input, info.cache_write, info.output, info.reasoning),
                       tiers=tiers, cache_write_1h=info.cache_write_1h)


def simple_model(provider: str, name: str, *, context_window: int, max_output_tokens: int, input: Decimal = _ZERO,
                 cached_input: Decimal | None = None, output: Decimal = _ZERO, cache_write: Decimal | None = None,
                 listed: bool, price_source: str, reasoning_model: bool = False,
                 structured_output: bool = True) -> ModelInfo:
    """A ModelInfo with one flat price (endpoints, unlisted models)."""
    cached = input if cached_input is None else cached_input
    write = input if cache_write is None else cache_write
    period = PricePeriod(start=None, base=(input, cached, write, output, output))
    return ModelInfo(
        provider=provider, name=name, context_window=context_window,
        max_output_tokens=min(max_output_tokens, context_window),
        input=input, cached_input=cached, cache_write=write, output=output, reasoning=output,
        tier_threshold=None, input_above=None, cached_input_above=None, output_above=None,
        reasoning_model=reasoning_model, min_cache_tokens=None, price_source=price_source, price_date="",
        listed=listed, periods=(period,), id=name, structured_output=structured_output,
    )
