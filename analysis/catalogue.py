"""The model catalogue: which models each provider offers, their limits and their prices.

Prices, their history (a price change applies from its date), long-prompt tiers and most context windows come
from the `genai-prices` package's bundled data (pinned; no network: it is read as shipped, its opt-in updater
is never started). `catalogue.toml` next to this module is a small overlay for what that data lacks or what
this service decides (output limits, missing context windows, input caps, retirement dates, request quirks,
aliases, flex prices), each entry with its source. Both are read once per process and turned into frozen
`ModelInfo`s whose rates are precomputed, so pricing a call is a dictionary look-up and five multiplications,
not a pass through the library's unit registry (pricing.cost_of).

Pure Python: no Django, so the worker, the API and the tests all read the same figures. Prices are `Decimal`
USD per million tokens, exactly as the library ships them.

Model names resolve to an exact id or a listed alias only (case-insensitively): genai-prices' own matching
is by prefix and pattern ("gpt-4o-anything" would price as gpt-4o), which is right for pricing logs and wrong
for accepting a job.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib.metadata import version as _package_version
from pathlib import Path
from typing import Any

PROVIDERS: tuple[str, ...] = ("gemini", "openai", "anthropic")
# Our provider name -> genai-prices' provider id.
LIBRARY_PROVIDER: dict[str, str] = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}

CATALOGUE_PATH: Path = Path(__file__).with_name("catalogue.toml")
PRICES_PACKAGE = "genai-prices"


def prices_version() -> str:
    """The installed genai-prices version (stored with every task's cost)."""
    return _prices_version()


@functools.cache
def _prices_version() -> str:
    return _package_version(PRICES_PACKAGE)


# What a model missing from the catalogue is assumed to be when ALLOW_UNLISTED_MODELS is on (a local Ollama or
# vLLM model behind OPENAI_BASE_URL, typically). 128k / 4k are what most current open models accept; a
# smaller model should be declared with MODEL_CONTEXT_OVERRIDES, which resolve_model() applies.
UNLISTED_CONTEXT_WINDOW: int = 128_000
UNLISTED_MAX_OUTPUT_TOKENS: int = 4_096

_ZERO = Decimal(0)
# Rates are always in this order: (input, cached_input, cache_write, output, reasoning), per million tokens.
Rates = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]


class CatalogueError(ValueError):
    """catalogue.toml (or the library data under it) is unusable: raised at load time, never in a bill."""


class UnknownProviderError(ValueError):
    def __init__(self, provider: str, valid: tuple[str, ...] | list[str] = PROVIDERS) -> None:
        self.provider = provider
        super().__init__(f"Unknown provider {provider!r}. Valid providers: {', '.join(valid)}.")


class UnknownModelError(ValueError):
    def __init__(self, provider: str, model: str, valid: list[str]) -> None:
        self.provider = provider
        self.model = model
        self.valid = valid
        super().__init__(
            f"Unknown model {model!r} for provider {provider!r}. Valid models: {', '.join(valid)}."
        )


class RetiredModelError(UnknownModelError):
    """A catalogue model past the day its provider stops serving it: refused before anything is queued."""

    def __init__(self, provider: str, model: str, retired_on: dt.date, valid: list[str]) -> None:
        self.provider, self.model, self.valid, self.retired_on = provider, model, valid, retired_on
        ValueError.__init__(
            self, f"{model!r} was retired by {provider} on {retired_on.isoformat()} and is no longer served. "
                  f"Current models: {', '.join(valid)}."
        )


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

    @property
    def has_tier(self) -> bool:
        return self.tier_threshold is not None

    def period_at(self, when: dt.datetime | dt.date | None = None, processing: str = "standard") -> PricePeriod:
        """The price period in force at `when` (a UTC time or day; None: now), for `processing`
        (standard, batch, flex). A batch or flex price not in force at `when` is a ValueError: such a call
        must never be billed at a price the provider did not ask."""
        if processing != "standard":
            periods = self.batch_periods if processing == "batch" else self.flex_periods
            period = _in_force(periods, _day_of(when))
            if period is None:
                raise ValueError(f"{self.name} has no {processing} price on {_day_of(when).isoformat()}")
            return period
        periods = self.periods
        if len(periods) == 1:
            return periods[0]
        if not periods:
            return _period_from_fields(self)
        return _in_force(periods, _day_of(when)) or periods[0]

    def offers(self, processing: str, when: dt.datetime | dt.date | None = None) -> bool:
        """Whether a call in this processing mode has a price at `when` (None: now)."""
        if processing == "standard":
            return True
        periods = self.batch_periods if processing == "batch" else self.flex_periods
        return _in_force(periods, _day_of(when)) is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description for GET /api/v1/models.

        Prices become floats: this is for display, and floats render as JSON numbers. Money is never
        computed from this dict (pricing.cost_of works on the Decimals).
        """

        def num(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        def rates(r: Rates) -> dict[str, float]:
            return dict(zip(("input", "cached_input", "cache_write", "output", "reasoning"), map(float, r),
                            strict=True))

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


def _day_of(when: dt.datetime | dt.date | None) -> dt.date:
    if when is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(when, dt.datetime):
        return (when.astimezone(dt.UTC) if when.tzinfo is not None else when).date()
    return when


def _in_force(periods: tuple[PricePeriod, ...], day: dt.date) -> PricePeriod | None:
    for period in reversed(periods):
        if period.start is None or period.start <= day:
            return period
    return None


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
                 listed: bool, price_source: str, reasoning_model: bool = False) -> ModelInfo:
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
        listed=listed, periods=(period,), id=name,
    )


# ─────────────────────────────────────────── the overlay ───────────────────────────────────────────

_SETTING_KEYS: frozenset[str] = frozenset({
    "max_output_tokens", "context_window", "input_cap", "min_cache_tokens", "reasoning_model", "temperature",
    "retires",
})
_MODEL_ONLY_KEYS: frozenset[str] = frozenset({"aliases", "flex"})
_FLEX_KEYS: tuple[str, ...] = ("input", "cached_input", "output")


@dataclass(frozen=True)
class _Rule:
    ids: frozenset[str]
    prefixes: tuple[str, ...]
    values: Mapping[str, Any]
    source: str

    def matches(self, model_id: str) -> bool:
        return model_id in self.ids or model_id.startswith(self.prefixes)


@dataclass
class _Overlay:
    defaults: dict[str, Any] = field(default_factory=dict)
    default_source: str = ""
    rules: list[_Rule] = field(default_factory=list)
    models: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    exclude: dict[str, str] = field(default_factory=dict)

    def excluded(self, model_id: str) -> str | None:
        for pattern, reason in self.exclude.items():
            if fnmatch.fnmatchcase(model_id, pattern):
                return reason
        return None


def _positive_int(where: str, key: str, value: Any) -> int:
    # bool is an int subclass: `context_window = true` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogueError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def _price(where: str, key: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise CatalogueError(f"{where}: {key} must be a number (USD per million tokens), got {value!r}")
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        raise CatalogueError(f"{where}: {key} must be a finite non-negative price, got {value!r}")
    return price


def _settings(where: str, entry: Mapping[str, Any], *, model: bool) -> tuple[dict[str, Any], str]:
    if not isinstance(entry, Mapping):
        raise CatalogueError(f"{where}: expected a table")
    allowed = _SETTING_KEYS | (_MODEL_ONLY_KEYS if model else frozenset()) | {"source"}
    if unknown := set(entry) - allowed - {"ids", "prefixes"}:
        # A misspelt key ("max_ouput_tokens") would otherwise be ignored and the default used instead.
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise CatalogueError(f"{where}: every entry needs a non-empty source")
    values: dict[str, Any] = {}
    for key in ("max_output_tokens", "context_window", "input_cap", "min_cache_tokens"):
        if key in entry:
            values[key] = _positive_int(where, key, entry[key])
    for key in ("reasoning_model", "temperature"):
        if key in entry:
            if not isinstance(entry[key], bool):
                raise CatalogueError(f"{where}: {key} must be true or false")
            values[key] = entry[key]
    if "retires" in entry:
        retires = entry["retires"]
        if isinstance(retires, dt.datetime) or not isinstance(retires, dt.date):
            raise CatalogueError(f"{where}: retires must be a TOML date (2026-11-30), got {retires!r}")
        values["retires"] = retires
    if "aliases" in entry:
        aliases = entry["aliases"]
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise CatalogueError(f"{where}: aliases must be a list of model ids")
        values["aliases"] = [a.lower() for a in aliases]
    if "flex" in entry:
        flex = entry["flex"]
        if not isinstance(flex, Mapping) or set(flex) - set(_FLEX_KEYS) or "input" not in flex or "output" not in flex:
            raise CatalogueError(f"{where}: flex must be {{input, output, cached_input?}}")
        values["flex"] = {k: _price(where, f"flex.{k}", v) for k, v in flex.items()}
    return values, source


def parse_overlay(text: str) -> dict[str, _Overlay]:
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"catalogue overlay is not valid TOML: {exc}") from exc
    if unknown := set(data) - set(PROVIDERS):
        raise CatalogueError(f"catalogue overlay: unknown provider table(s) {', '.join(sorted(unknown))}")
    overlays: dict[str, _Overlay] = {}
    for provider in PROVIDERS:
        table = data.get(provider, {})
        if unknown := set(table) - {"defaults", "rules", "models", "exclude"}:
            raise CatalogueError(f"catalogue overlay {provider}: unknown section(s) {', '.join(sorted(unknown))}")
        overlay = _Overlay()
        if "defaults" in table:
            overlay.defaults, overlay.default_source = _settings(f"{provider}.defaults", table["defaults"], model=False)
        for i, rule in enumerate(table.get("rules", []), 1):
            where = f"{provider}.rules[{i}]"
            values, source = _settings(where, rule, model=False)
            ids, prefixes = rule.get("ids", []), rule.get("prefixes", [])
            if not (ids or prefixes) or not all(isinstance(x, str) and x for x in (*ids, *prefixes)):
                raise CatalogueError(f"{where}: a rule needs ids or prefixes (lists of strings)")
            overlay.rules.append(_Rule(frozenset(ids), tuple(prefixes), values, source))
        for model_id, entry in table.get("models", {}).items():
            overlay.models[model_id] = _settings(f"{provider}.models.{model_id}", entry, model=True)
        for pattern, reason in table.get("exclude", {}).items():
            if not isinstance(reason, str) or not reason.strip():
                raise CatalogueError(f"{provider}.exclude.{pattern}: give the reason")
            overlay.exclude[pattern] = reason
        overlays[provider] = overlay
    return overlays


# ─────────────────────────────────────── the library's data ───────────────────────────────────────

# Kinds of model a provider's price entry lists that are not text generation over the chat APIs we call
# (genai-prices' google entry also holds Vertex-hosted Claude; its openai entry realtime, audio and image models).
_NOT_TEXT = re.compile(r"(^claude-)|tts|live|embedding|image|realtime|audio|transcribe|whisper|moderation|vision")
# An alias genai-prices lists by exact name is accepted when it is a snapshot of the id: the id followed by a
# date or a snapshot number, or "-latest". Other spellings it matches ("gpt-5-2" for gpt-5.2, "gpt-5-chat" for
# gpt-5) are not API ids of this model, and sending them would fail or run another model.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|latest)$")


@dataclass(frozen=True)
class Skipped:
    provider: str
    model: str
    reason: str


def _equals_aliases(match: Any) -> list[str]:
    from genai_prices import types

    found: list[str] = []

    def walk(clause: Any) -> None:
        if isinstance(clause, types.ClauseEquals):
            found.append(clause.equals.lower())
        elif isinstance(clause, types.ClauseOr):
            for inner in clause.or_:
                walk(inner)

    walk(match)
    return found


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


def _periods(model: Any) -> tuple[PricePeriod, ...] | None:
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


def _variant(model: Any, context: dict[str, str], today: dt.date) -> tuple[tuple[str, Decimal], ...]:
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


def _variant_periods(model: Any, context: dict[str, str]) -> tuple[PricePeriod, ...]:
    """The billing periods of a batch or flex variant: at every day a standard price or a variant starts,
    the prices genai-prices itself resolves for that context (model.get_prices: the variant's kinds replace
    the standard ones, kind by kind). Days with no matching variant in force have no period."""
    variants = [v for v in (model.price_variants or ()) if v.when == context]
    if not variants:
        return ()
    starts: set[dt.date | None] = {None}
    for variant in variants:
        if isinstance(variant.constraint, _start_constraint()):
            starts.add(variant.constraint.start_date)
        elif variant.constraint is not None:
            return ()  # time-of-day variants: not something we bill
    if not isinstance(model.prices, _model_price()):
        starts.update(c.constraint.start_date for c in model.prices if c.constraint is not None
                      and hasattr(c.constraint, "start_date"))
    periods = []
    for start in sorted(starts, key=lambda d: d or dt.date.min):
        moment = dt.datetime.combine(start or dt.date(2000, 1, 1), dt.time(), dt.UTC)
        if not any(v.constraint is None or v.constraint.active(moment) for v in variants):
            continue
        period = _period(start, model.get_prices(moment, context))
        if period is not None:
            periods.append(period)
    return tuple(periods)


def _overlay_flex_periods(periods: tuple[PricePeriod, ...], flex: Mapping[str, Decimal]) -> tuple[PricePeriod, ...]:
    """Flex prices the overlay gives (kinds input, cached_input, output), put in place of the standard ones of
    every period; reasoning is output, as everywhere."""
    out = []
    for period in periods:
        inp, read, write, output, _ = period.base
        inp = flex.get("input", inp)
        output = flex.get("output", output)
        base = (inp, flex.get("cached_input", read), write, output, output)
        out.append(PricePeriod(start=period.start, base=base, cache_write_1h=period.cache_write_1h))
    return tuple(out)


def _start_constraint():
    from genai_prices import types

    return types.StartDateConstraint


def _model_price():
    from genai_prices import types

    return types.ModelPrice


def _library_models(provider: str) -> list[Any]:
    # The bundled data only (genai_prices.data), never a snapshot the updater may have set.
    from genai_prices.data import providers

    wanted = LIBRARY_PROVIDER[provider]
    for entry in providers:
        if entry.id == wanted:
            return list(entry.models)
    raise CatalogueError(f"genai-prices has no provider {wanted!r}")


def build_catalogue(overlays: Mapping[str, _Overlay], *, today: dt.date | None = None,
                    library: Mapping[str, list[Any]] | None = None,
                    ) -> tuple[dict[str, dict[str, ModelInfo]], list[Skipped]]:
    """(provider -> id -> ModelInfo, the library models left out and why)."""
    today = today or utc_today()
    version = _prices_version()
    catalogue: dict[str, dict[str, ModelInfo]] = {}
    skipped: list[Skipped] = []
    for provider in PROVIDERS:
        overlay = overlays.get(provider) or _Overlay()
        models: dict[str, ModelInfo] = {}
        seen: dict[str, str] = {}
        library_models = library[provider] if library is not None else _library_models(provider)
        known_ids = {m.id for m in library_models}
        if unknown := set(overlay.models) - known_ids:
            raise CatalogueError(f"catalogue overlay {provider}: genai-prices {version} lists no "
                                 f"{', '.join(sorted(unknown))}")
        for model in library_models:
            model_id = model.id
            if (provider == "gemini" or provider == "openai") and _NOT_TEXT.search(model_id):
                skipped.append(Skipped(provider, model_id, "not a text-generation model"))
                continue
            if reason := overlay.excluded(model_id):
                skipped.append(Skipped(provider, model_id, reason))
                continue
            if model_id in models:
                continue  # the library lists an id twice: the first entry wins, as its matcher would
            periods = _periods(model)
            if periods is None:
                skipped.append(Skipped(provider, model_id, "no per-token text prices in genai-prices"))
                continue
            values: dict[str, Any] = dict(overlay.defaults)
            sources = [overlay.default_source] if overlay.default_source else []
            for rule in overlay.rules:
                if rule.matches(model_id):
                    values.update(rule.values)
                    sources.append(rule.source)
            if model_id in overlay.models:
                entry, source = overlay.models[model_id]
                values.update(entry)
                sources.append(source)
            total = values.get("context_window") or model.context_window
            if not total:
                skipped.append(Skipped(provider, model_id, "no context window in genai-prices or the overlay"))
                continue
            window = min(total, values.get("input_cap") or total)
            max_output = values.get("max_output_tokens") or UNLISTED_MAX_OUTPUT_TOKENS
            current = _current(periods, today)
            first_tier = current.tiers[0] if current.tiers else None
            aliases = [a for a in _equals_aliases(model.match)
                       if a != model_id and a.startswith(model_id) and _SNAPSHOT_SUFFIX.search(a[len(model_id):])]
            aliases += [a for a in values.get("aliases", []) if a not in aliases]
            for name in (model_id, *aliases):
                if name in seen:
                    raise CatalogueError(f"catalogue {provider}: {name!r} names both {seen[name]} and {model_id}")
                seen[name] = model_id
            flex = tuple(values["flex"].items()) if "flex" in values else _variant(model, {"service_tier": "flex"}, today)
            reasoning_model = bool(values.get("reasoning_model", False))
            models[model_id] = ModelInfo(
                provider=provider,
                name=model_id,
                id=model_id,
                display_name=model.name or "",
                context_window=window,
                total_context=total if total != window else None,
                max_output_tokens=min(max_output, total),
                input=current.base[0], cached_input=current.base[1], cache_write=current.base[2],
                output=current.base[3], reasoning=current.base[4],
                tier_threshold=first_tier[0] if first_tier else None,
                input_above=first_tier[1][0] if first_tier else None,
                cached_input_above=first_tier[1][1] if first_tier else None,
                cache_write_above=first_tier[1][2] if first_tier else None,
                output_above=first_tier[1][3] if first_tier else None,
                reasoning_model=reasoning_model,
                # OpenAI's reasoning models refuse a non-default temperature (GenerationParams handles them);
                # `temperature = false` marks any other model that does.
                accepts_temperature=bool(values.get("temperature", True)),
                min_cache_tokens=values.get("min_cache_tokens"),
                price_source=f"{PRICES_PACKAGE} {version} (bundled data)",
                price_date=current.start.isoformat() if current.start else "",
                listed=True,
                cache_write_1h=current.cache_write_1h,
                aliases=tuple(aliases),
                retires_on=values.get("retires"),
                periods=periods,
                deprecated=bool(model.deprecated),
                overlay_sources=tuple(dict.fromkeys(sources)),
                flex=flex,
                batch=_variant(model, {"processing": "batch"}, today),
                batch_periods=_variant_periods(model, {"processing": "batch"}),
                flex_periods=(_overlay_flex_periods(periods, values["flex"]) if "flex" in values
                              else _variant_periods(model, {"service_tier": "flex"})),
            )
        catalogue[provider] = models
    return catalogue, skipped


def _current(periods: tuple[PricePeriod, ...], today: dt.date) -> PricePeriod:
    for period in reversed(periods):
        if period.start is None or period.start <= today:
            return period
    return periods[0]


def parse_catalogue(text: str, *, today: dt.date | None = None) -> dict[str, dict[str, ModelInfo]]:
    """Build the catalogue from overlay TOML text over the bundled library data. Raises CatalogueError."""
    return build_catalogue(parse_overlay(text), today=today)[0]


@functools.cache
def _built() -> tuple[dict[str, dict[str, ModelInfo]], list[Skipped]]:
    return build_catalogue(parse_overlay(CATALOGUE_PATH.read_text(encoding="utf-8")))


def _catalogue() -> dict[str, dict[str, ModelInfo]]:
    return _built()[0]


def skipped_models() -> list[Skipped]:
    """The library's models of our providers that are not offered, with the reason (tests, docs)."""
    return list(_built()[1])


@functools.cache
def _name_index() -> dict[str, dict[str, ModelInfo]]:
    index: dict[str, dict[str, ModelInfo]] = {}
    for provider, models in _catalogue().items():
        names: dict[str, ModelInfo] = {}
        for info in models.values():
            names[info.name] = info
            for alias in info.aliases:
                names[alias] = info
        index[provider] = names
    return index


def load_catalogue() -> dict[str, dict[str, ModelInfo]]:
    """provider -> catalogue id -> ModelInfo, in the library's order.

    Built once per process; each call returns fresh dicts so a caller mutating the result cannot change what
    everyone else is billed (the ModelInfo values themselves are frozen).
    """
    return {provider: dict(models) for provider, models in _catalogue().items()}


# ─────────────────────────────────────────── look-ups ───────────────────────────────────────────


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise UnknownProviderError(provider)


def get_model(provider: str, model: str) -> ModelInfo | None:
    """The catalogue entry for an exact model id or one of its listed aliases (any case); None if absent.

    An alias returns the catalogue entry (same prices); resolve_model keeps the alias as the name sent.
    Raises UnknownProviderError for a provider outside PROVIDERS.
    """
    _check_provider(provider)
    index = _name_index()[provider]
    return index.get(model) or index.get(model.lower())


def list_models(provider: str | None = None) -> list[ModelInfo]:
    if provider is None:
        return [info for p in PROVIDERS for info in _catalogue()[p].values()]
    _check_provider(provider)
    return list(_catalogue()[provider].values())


def model_names(provider: str) -> list[str]:
    """Catalogue ids of one provider, in catalogue order (aliases not repeated)."""
    return [info.name for info in list_models(provider)]


def _override_for(info: ModelInfo, overrides: Mapping[str, int] | None) -> int | None:
    """The smallest override naming this model by its catalogue id, its requested name or any alias."""
    if not overrides:
        return None
    found = [overrides[n] for n in dict.fromkeys((info.name, info.catalogue_id, *info.aliases)) if n in overrides]
    return min(found) if found else None


def unlisted_model(provider: str, model: str, *, context_window: int | None = None) -> ModelInfo:
    """A stand-in for a model the catalogue does not know: zero prices, listed=False.

    Zero here means "unknown", not "free": callers should show listed=False next to any cost so nobody
    reads the zero as a real figure. max_output_tokens never exceeds the context window (a 2k-context local
    model cannot produce 4k tokens).
    """
    _check_provider(provider)
    return simple_model(provider, model, context_window=context_window or UNLISTED_CONTEXT_WINDOW,
                        max_output_tokens=UNLISTED_MAX_OUTPUT_TOKENS, listed=False,
                        price_source="unlisted: not in the catalogue, priced at 0")


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def resolve_model(
    provider: str,
    model: str,
    *,
    allow_unlisted: bool,
    context_overrides: Mapping[str, int] | None = None,
    today: dt.date | None = None,
    endpoints: Mapping[str, Any] | None = None,
) -> ModelInfo:
    """The ModelInfo to run and bill a request with.

    - A catalogue model, by exact id or listed alias (any case): its entry, named by the exact id or alias
      it resolved to (the id sent to the provider and stored with the job), with context_window lowered to a
      MODEL_CONTEXT_OVERRIDES value when one names it (an override only ever narrows a known window: a proxy
      in front of the provider may accept less, never more).
    - A configured OpenAI-compatible endpoint (`endpoints`: name -> analysis.endpoints.Endpoint): the
      endpoint's model (its prices, or unknown ones).
    - Unknown, allow_unlisted: unlisted_model(); an override naming it *is* its context window (the
      operator knows the local model better than our 128k guess).
    - Unknown otherwise: UnknownModelError listing the valid names. Unknown provider: UnknownProviderError.
    - Past its `retires` day (UTC): RetiredModelError (an UnknownModelError), listing the models still served.
    """
    if endpoints and provider in endpoints:
        return endpoints[provider].model_info(model, context_overrides=context_overrides)
    if provider not in PROVIDERS:
        raise UnknownProviderError(provider, (*PROVIDERS, *(endpoints or ())))
    info = get_model(provider, model)
    if info is not None:
        today = today or utc_today()
        if info.retired(today):
            current = [name for name in model_names(provider) if not get_model(provider, name).retired(today)]
            raise RetiredModelError(provider, model, info.retires_on, current)
        requested = model if model in info.aliases or model == info.name else model.lower()
        if requested != info.name:
            # Requested by an alias: send and store that exact id (a dated snapshot must not be swapped for
            # the moving alias); the prices are the catalogue entry's, `id` says which.
            info = replace(info, name=requested)
        override = _override_for(info, context_overrides)
        if override is not None and override < info.context_window:
            info = replace(info, context_window=override, max_output_tokens=min(info.max_output_tokens, override))
        return info
    if allow_unlisted:
        override = (context_overrides or {}).get(model)
        return unlisted_model(provider, model, context_window=override)
    raise UnknownModelError(provider, model, [n for n in model_names(provider)
                                              if not get_model(provider, n).retired(today or utc_today())])


def effective_context(info: ModelInfo, *, max_prompt_tokens: int, overrides: Mapping[str, int]) -> int:
    """The most prompt tokens one request for this model may carry.

    The smallest of the model's context window, MAX_PROMPT_TOKENS (when > 0; 0 means "no global cap") and
    a per-model override. An unlisted model's override was already made its context window by
    resolve_model, so it is simply taken again here.
    """
    limits = [info.context_window]
    if max_prompt_tokens > 0:
        limits.append(max_prompt_tokens)
    override = _override_for(info, overrides)
    if override is not None:
        limits.append(override)
    return min(limits)


def parse_context_overrides(value: str) -> dict[str, int]:
    """Parse MODEL_CONTEXT_OVERRIDES: "model=tokens,model=tokens" -> {model: tokens}.

    Blank input gives {}; empty items (a trailing comma) are skipped; spaces around names and numbers are
    ignored; "128_000" is accepted. Everything else raises ValueError naming the bad item, because a
    silently dropped override means prompts too long for a local model.
    """
    result: dict[str, int] = {}
    for raw in (value or "").split(","):
        item = raw.strip()
        if not item:
            continue
        model, sep, tokens_text = item.partition("=")
        model, tokens_text = model.strip(), tokens_text.strip()
        if not sep or not model or not tokens_text:
            raise ValueError(f"context override {item!r} is not of the form model=tokens")
        try:
            tokens = int(tokens_text)
        except ValueError:
            raise ValueError(f"context override {item!r}: {tokens_text!r} is not a whole number of tokens") from None
        if tokens <= 0:
            raise ValueError(f"context override {item!r}: tokens must be positive")
        if model in result and result[model] != tokens:
            raise ValueError(f"context override for {model!r} given twice ({result[model]} and {tokens})")
        result[model] = tokens
    return result

