"""Where the catalogue's figures come from: genai-prices' bundled data under the catalogue.toml overlay.

parse_overlay reads and checks the overlay; build_catalogue turns the library's entries of our providers,
with the overlay applied, into ModelInfos (and says which models it leaves out, and why). The library is
read as shipped (genai_prices.data): no network, its opt-in updater never started.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib.metadata import version as _package_version
from typing import Any

from analysis.model_info import (
    UNLISTED_MAX_OUTPUT_TOKENS, ModelInfo, PricePeriod, Rates, period_in_force, utc_today,
)
from analysis.providers import PROVIDER_NAMES

# Our provider name -> genai-prices' provider id.
LIBRARY_PROVIDER: dict[str, str] = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}
PRICES_PACKAGE = "genai-prices"


@functools.cache
def library_version() -> str:
    """The installed genai-prices version."""
    return _package_version(PRICES_PACKAGE)


class CatalogueError(ValueError):
    """catalogue.toml (or the library data under it) is unusable: raised at load time, never in a bill."""


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
    if unknown := set(data) - set(PROVIDER_NAMES):
        raise CatalogueError(f"catalogue overlay: unknown provider table(s) {', '.join(sorted(unknown))}")
    overlays: dict[str, _Overlay] = {}
    for provider in PROVIDER_NAMES:
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


def _overlay_flex_periods(periods: tuple[PricePeriod, ...], flex: Mapping[str, Decimal]) -> tuple[PricePeriod, ...]:
    """Flex prices the overlay gives (kinds input, cached_input, output), put in place of the standard ones of
    every period; reasoning is output, as everywhere."""
    out = []
    for period in periods:
        inp, read, write, output, _ = period.base
        output = flex.get("output", output)
        base = (flex.get("input", inp), flex.get("cached_input", read), write, output, output)
        out.append(PricePeriod(start=period.start, base=base, cache_write_1h=period.cache_write_1h))
    return tuple(out)


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
    version = library_version()
    catalogue: dict[str, dict[str, ModelInfo]] = {}
    skipped: list[Skipped] = []
    for provider in PROVIDER_NAMES:
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
            current = period_in_force(periods, today)
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
