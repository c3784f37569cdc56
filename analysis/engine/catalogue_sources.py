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

from analysis.engine.library_prices import library_periods, overlay_flex_periods, variant_periods, variant_rates
from analysis.engine.model_info import UNLISTED_MAX_OUTPUT_TOKENS, ModelInfo, period_in_force, utc_today
from analysis.engine.providers import PROVIDER_NAMES

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
    "retires", "structured_output",
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
    for key in ("reasoning_model", "temperature", "structured_output"):
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
            periods = library_periods(model)
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
            flex = tuple(values["flex"].items()) if "flex" in values else variant_rates(model, {"service_tier": "flex"}, today)
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
                structured_output=bool(values.get("structured_output", True)),
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
                batch=variant_rates(model, {"processing": "batch"}, today),
                batch_periods=variant_periods(model, {"processing": "batch"}),
                flex_periods=(overlay_flex_periods(periods, values["flex"]) if "flex" in values
                              else variant_periods(model, {"service_tier": "flex"})),
            )
        catalogue[provider] = models
    return catalogue, skipped
