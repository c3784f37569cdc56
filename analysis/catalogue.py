"""The model catalogue: which models each provider offers, their limits and their prices.

The data lives in `catalogue.toml` next to this module (one file, so a price change is a one-line diff);
this module loads it once, validates it, and answers look-ups. Pure Python: no Django, so the worker, the
API and the tests all read the same figures.

Prices are `Decimal` USD per million tokens, parsed straight from the TOML text (`parse_float=Decimal`), so
`0.075` is exactly 0.075 and never 0.07499999....
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

PROVIDERS: tuple[str, ...] = ("gemini", "openai", "anthropic")

CATALOGUE_PATH: Path = Path(__file__).with_name("catalogue.toml")

# What a model missing from the catalogue is assumed to be when ALLOW_UNLISTED_MODELS is on (a local Ollama or
# vLLM model behind OPENAI_BASE_URL, typically). 128k / 4k are what most current open models accept; a
# smaller model should be declared with MODEL_CONTEXT_OVERRIDES, which resolve_model() applies.
UNLISTED_CONTEXT_WINDOW: int = 128_000
UNLISTED_MAX_OUTPUT_TOKENS: int = 4_096

_ZERO = Decimal(0)
_PRICE_KEYS: tuple[str, ...] = ("input", "cached_input", "cache_write", "output", "reasoning")
_TIER_KEYS: tuple[str, ...] = ("input_above", "cached_input_above", "output_above")
_REQUIRED_KEYS: frozenset[str] = frozenset(
    {
        "context_window",
        "max_output_tokens",
        "input",
        "cached_input",
        "output",
        "reasoning_model",
        "price_source",
        "price_date",
    }
)
_OPTIONAL_KEYS: frozenset[str] = frozenset(
    {"cache_write", "cache_write_1h", "reasoning", "tier_threshold", "min_cache_tokens", "aliases", "retires",
     *_TIER_KEYS}
)
_PRICE_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


class CatalogueError(ValueError):
    """catalogue.toml is malformed: raised at load time so a bad edit never reaches billing."""


class UnknownProviderError(ValueError):
    def __init__(self, provider: str) -> None:
        self.provider = provider
        super().__init__(f"Unknown provider {provider!r}. Valid providers: {', '.join(PROVIDERS)}.")


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
class ModelInfo:
    provider: str
    name: str
    context_window: int  # most prompt tokens per request
    max_output_tokens: int  # most generated tokens per call, reasoning included
    # USD per million tokens.
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    # Long-prompt tier (gemini-2.5-pro): all None, or all set.
    tier_threshold: int | None
    input_above: Decimal | None
    cached_input_above: Decimal | None
    output_above: Decimal | None
    reasoning_model: bool
    min_cache_tokens: int | None
    price_source: str
    price_date: str
    # False for a model accepted under ALLOW_UNLISTED_MODELS: its zero prices are unknown, not free.
    listed: bool = True
    cache_write_1h: Decimal | None = None  # reference only; writes are billed at the 5-minute price
    aliases: tuple[str, ...] = ()
    # The provider's announced end of life: served until that day, refused after it.
    retires_on: dt.date | None = None

    def retired(self, today: dt.date) -> bool:
        return self.retires_on is not None and today > self.retires_on

    @property
    def has_tier(self) -> bool:
        return self.tier_threshold is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description for GET /api/v1/models.

        Prices become floats: this is for display, and floats render as JSON numbers. Money is never
        computed from this dict (pricing.cost_of works on the Decimals).
        """

        def num(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        return {
            "provider": self.provider,
            "name": self.name,
            "aliases": list(self.aliases),
            "listed": self.listed,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "reasoning_model": self.reasoning_model,
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
            "price_source": self.price_source,
            "price_date": self.price_date,
            "retires_on": self.retires_on.isoformat() if self.retires_on else None,
        }


# ─────────────────────────────────────────── loading ───────────────────────────────────────────


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


def _model_from_entry(provider: str, name: str, entry: Mapping[str, Any]) -> ModelInfo:
    where = f"catalogue {provider}.{name}"
    if not isinstance(entry, Mapping):
        raise CatalogueError(f"{where}: expected a table")
    keys = set(entry)
    if missing := _REQUIRED_KEYS - keys:
        raise CatalogueError(f"{where}: missing {', '.join(sorted(missing))}")
    if unknown := keys - _REQUIRED_KEYS - _OPTIONAL_KEYS:
        # A misspelt key ("cached_inptu") would otherwise be ignored and the default billed instead.
        raise CatalogueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")

    input_price = _price(where, "input", entry["input"])
    output_price = _price(where, "output", entry["output"])
    # No separate write price means the provider bills a write as ordinary input (OpenAI, Gemini implicit
    # caching); defaulting to 0 would under-bill any write a provider did report.
    cache_write = _price(where, "cache_write", entry.get("cache_write", input_price))
    reasoning = _price(where, "reasoning", entry.get("reasoning", output_price))
    cache_write_1h = _price(where, "cache_write_1h", entry["cache_write_1h"]) if "cache_write_1h" in entry else None

    tier_present = [k for k in ("tier_threshold", *_TIER_KEYS) if k in entry]
    if tier_present and len(tier_present) != 1 + len(_TIER_KEYS):
        raise CatalogueError(
            f"{where}: tier_threshold, {', '.join(_TIER_KEYS)} must be given together (got {', '.join(tier_present)})"
        )
    tier_threshold = _positive_int(where, "tier_threshold", entry["tier_threshold"]) if tier_present else None
    above = {k: _price(where, k, entry[k]) if tier_present else None for k in _TIER_KEYS}
    if tier_threshold is not None and (reasoning != output_price or cache_write != input_price):
        # Above the threshold pricing.cost_of bills reasoning at output_above and cache writes at input_above,
        # which is right only when they follow output and input below it (Gemini: thoughts are output, an
        # implicit-cache write is plain input). A model that breaks this needs its own *_above prices first.
        raise CatalogueError(f"{where}: a tiered model must bill reasoning as output and cache writes as input")

    if not isinstance(entry["reasoning_model"], bool):
        raise CatalogueError(f"{where}: reasoning_model must be true or false")
    min_cache = entry.get("min_cache_tokens")
    if min_cache is not None:
        min_cache = _positive_int(where, "min_cache_tokens", min_cache)

    source = entry["price_source"]
    if not isinstance(source, str) or not source.strip():
        raise CatalogueError(f"{where}: price_source must be a non-empty string")
    date = entry["price_date"]
    if isinstance(date, dt.date):  # a bare TOML date literal is fine too
        date = date.isoformat()
    if not isinstance(date, str) or not _PRICE_DATE_RE.match(date):
        raise CatalogueError(f"{where}: price_date must be YYYY-MM-DD (or YYYY-MM), got {date!r}")

    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise CatalogueError(f"{where}: aliases must be a list of model ids")
    retires = entry.get("retires")
    if retires is not None and (isinstance(retires, dt.datetime) or not isinstance(retires, dt.date)):
        raise CatalogueError(f"{where}: retires must be a TOML date (2026-11-30), got {retires!r}")

    return ModelInfo(
        provider=provider,
        name=name,
        context_window=_positive_int(where, "context_window", entry["context_window"]),
        max_output_tokens=_positive_int(where, "max_output_tokens", entry["max_output_tokens"]),
        input=input_price,
        cached_input=_price(where, "cached_input", entry["cached_input"]),
        cache_write=cache_write,
        output=output_price,
        reasoning=reasoning,
        tier_threshold=tier_threshold,
        input_above=above["input_above"],
        cached_input_above=above["cached_input_above"],
        output_above=above["output_above"],
        reasoning_model=entry["reasoning_model"],
        min_cache_tokens=min_cache,
        price_source=source,
        price_date=date,
        listed=True,
        cache_write_1h=cache_write_1h,
        aliases=tuple(aliases),
        retires_on=retires,
    )


def parse_catalogue(text: str) -> dict[str, dict[str, ModelInfo]]:
    """Parse and validate catalogue TOML text. Raises CatalogueError (a ValueError) on any problem."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"catalogue is not valid TOML: {exc}") from exc
    if unknown := set(data) - set(PROVIDERS):
        raise CatalogueError(f"catalogue: unknown provider table(s) {', '.join(sorted(unknown))}")

    catalogue: dict[str, dict[str, ModelInfo]] = {}
    for provider in PROVIDERS:
        models: dict[str, ModelInfo] = {}
        seen: set[str] = set()
        for name, entry in data.get(provider, {}).items():
            info = _model_from_entry(provider, name, entry)
            for model_id in (name, *info.aliases):
                if model_id in seen:
                    raise CatalogueError(f"catalogue {provider}: {model_id!r} is listed twice")
                seen.add(model_id)
            models[name] = info
        catalogue[provider] = models
    return catalogue


@functools.cache
def _catalogue() -> dict[str, dict[str, ModelInfo]]:
    return parse_catalogue(CATALOGUE_PATH.read_text(encoding="utf-8"))


@functools.cache
def _alias_index() -> dict[str, dict[str, ModelInfo]]:
    index: dict[str, dict[str, ModelInfo]] = {}
    for provider, models in _catalogue().items():
        index[provider] = {alias: info for info in models.values() for alias in info.aliases}
    return index


def load_catalogue() -> dict[str, dict[str, ModelInfo]]:
    """provider -> canonical model name -> ModelInfo, in file order.

    The file is read once per process; each call returns fresh dicts so a caller mutating the result cannot
    change what everyone else is billed (the ModelInfo values themselves are frozen).
    """
    return {provider: dict(models) for provider, models in _catalogue().items()}


def reload_catalogue() -> None:
    """Forget the cached file (tests, or a long-lived process after a price edit)."""
    _catalogue.cache_clear()
    _alias_index.cache_clear()


# ─────────────────────────────────────────── look-ups ───────────────────────────────────────────


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise UnknownProviderError(provider)


def get_model(provider: str, model: str) -> ModelInfo | None:
    """The catalogue entry for a model id or one of its dated aliases; None if absent.

    An alias returns the canonical entry (same prices); callers keep sending the id the user chose.
    Raises UnknownProviderError for a provider outside PROVIDERS.
    """
    _check_provider(provider)
    return _catalogue()[provider].get(model) or _alias_index()[provider].get(model)


def list_models(provider: str | None = None) -> list[ModelInfo]:
    if provider is None:
        return [info for p in PROVIDERS for info in _catalogue()[p].values()]
    _check_provider(provider)
    return list(_catalogue()[provider].values())


def model_names(provider: str) -> list[str]:
    """Canonical model names of one provider, in catalogue order (aliases not repeated)."""
    return [info.name for info in list_models(provider)]


def _override_for(info: ModelInfo, overrides: Mapping[str, int] | None) -> int | None:
    """The smallest override naming this model by its canonical name or any alias."""
    if not overrides:
        return None
    found = [overrides[n] for n in (info.name, *info.aliases) if n in overrides]
    return min(found) if found else None


def unlisted_model(provider: str, model: str, *, context_window: int | None = None) -> ModelInfo:
    """A stand-in for a model the catalogue does not know: zero prices, listed=False.

    Zero here means "unknown", not "free": callers should show listed=False next to any cost so nobody
    reads the zero as a real figure. max_output_tokens never exceeds the context window (a 2k-context local
    model cannot produce 4k tokens).
    """
    _check_provider(provider)
    window = context_window or UNLISTED_CONTEXT_WINDOW
    return ModelInfo(
        provider=provider,
        name=model,
        context_window=window,
        max_output_tokens=min(UNLISTED_MAX_OUTPUT_TOKENS, window),
        input=_ZERO,
        cached_input=_ZERO,
        cache_write=_ZERO,
        output=_ZERO,
        reasoning=_ZERO,
        tier_threshold=None,
        input_above=None,
        cached_input_above=None,
        output_above=None,
        reasoning_model=False,
        min_cache_tokens=None,
        price_source="unlisted: not in the catalogue, priced at 0",
        price_date="",
        listed=False,
    )


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def resolve_model(
    provider: str,
    model: str,
    *,
    allow_unlisted: bool,
    context_overrides: Mapping[str, int] | None = None,
    today: dt.date | None = None,
) -> ModelInfo:
    """The ModelInfo to run and bill a request with.

    - A catalogue model (or alias: then named as requested): its entry, with context_window lowered to a MODEL_CONTEXT_OVERRIDES
      value when one names it (an override only ever narrows a known window: a proxy in front of the
      provider may accept less, never more).
    - Unknown, allow_unlisted: unlisted_model(); an override naming it *is* its context window (the
      operator knows the local model better than our 128k guess).
    - Unknown otherwise: UnknownModelError listing the valid names. Unknown provider: UnknownProviderError.
    - Past its `retires` day (UTC): RetiredModelError (an UnknownModelError), listing the models still served.
    """
    info = get_model(provider, model)
    if info is not None:
        today = today or utc_today()
        if info.retired(today):
            current = [name for name in model_names(provider) if not get_model(provider, name).retired(today)]
            raise RetiredModelError(provider, model, info.retires_on, current)
        if info.name != model:
            # Requested by a dated alias: keep the id the user chose, since callers send info.name to the
            # provider and report it; the prices are the canonical entry's.
            info = replace(info, name=model)
        override = _override_for(info, context_overrides)
        if override is not None and override < info.context_window:
            info = replace(info, context_window=override)
        return info
    if allow_unlisted:
        override = (context_overrides or {}).get(model)
        return unlisted_model(provider, model, context_window=override)
    raise UnknownModelError(provider, model, model_names(provider))


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

