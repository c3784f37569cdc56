"""The model catalogue: which models each provider offers, their limits and their prices.

Prices, their history (a price change applies from its date), long-prompt tiers and most context windows come
from the `genai-prices` package's bundled data (pinned; no network: it is read as shipped, its opt-in updater
is never started). `catalogue.toml` next to this module is a small overlay for what that data lacks or what
this service decides (output limits, missing context windows, input caps, retirement dates, request quirks,
aliases, flex prices), each entry with its source. Both are read once per process (catalogue_sources.py) and
turned into frozen `ModelInfo`s (model_info.py) whose rates are precomputed, so pricing a call is a dictionary
look-up and five multiplications, not a pass through the library's unit registry (pricing.cost_of).

No settings are read here, so the worker, the API and the tests all read the same figures. Prices are `Decimal`
USD per million tokens, exactly as the library ships them.

Model names resolve to an exact id or a listed alias only (case-insensitively): genai-prices' own matching
is by prefix and pattern ("gpt-4o-anything" would price as gpt-4o), which is right for pricing logs and wrong
for accepting a job.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from analysis.engine.catalogue_sources import Skipped, build_catalogue, library_version, parse_overlay
from analysis.engine.model_info import (
    UNLISTED_CONTEXT_WINDOW, UNLISTED_MAX_OUTPUT_TOKENS, ModelInfo, simple_model, utc_today,
)
from analysis.engine.providers import PROVIDER_NAMES

CATALOGUE_PATH: Path = Path(__file__).with_name("catalogue.toml")


def prices_version() -> str:
    """The installed genai-prices version (stored with every task's cost)."""
    return library_version()


class UnknownProviderError(ValueError):
    def __init__(self, provider: str, valid: tuple[str, ...] | list[str] = PROVIDER_NAMES) -> None:
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
    if provider not in PROVIDER_NAMES:
        raise UnknownProviderError(provider)


def get_model(provider: str, model: str) -> ModelInfo | None:
    """The catalogue entry for an exact model id or one of its listed aliases (any case); None if absent.

    An alias returns the catalogue entry (same prices); resolve_model keeps the alias as the name sent.
    Raises UnknownProviderError for a provider outside PROVIDER_NAMES.
    """
    _check_provider(provider)
    index = _name_index()[provider]
    return index.get(model) or index.get(model.lower())


def list_models(provider: str | None = None) -> list[ModelInfo]:
    if provider is None:
        return [info for p in PROVIDER_NAMES for info in _catalogue()[p].values()]
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
    - A configured OpenAI-compatible endpoint (`endpoints`: name -> analysis.engine.openai_compatible.Endpoint): the
      endpoint's model (its prices, or unknown ones).
    - Unknown, allow_unlisted: unlisted_model(); an override naming it *is* its context window (the
      operator knows the local model better than our 128k guess).
    - Unknown otherwise: UnknownModelError listing the valid names. Unknown provider: UnknownProviderError.
    - Past its `retires` day (UTC): RetiredModelError (an UnknownModelError), listing the models still served.
    """
    if endpoints and provider in endpoints:
        return endpoints[provider].model_info(model, context_overrides=context_overrides)
    if provider not in PROVIDER_NAMES:
        raise UnknownProviderError(provider, (*PROVIDER_NAMES, *(endpoints or ())))
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
