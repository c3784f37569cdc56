"""Fallback chains: the models a task moves on to when its own cannot answer (analysis/engine/runner.py runs them).

A chain is a list of at most MAX_FALLBACK_MODELS `{"provider", "model"}` objects, each a provider or a named
endpoint with one of its models, tried in order after the job's own model. It comes with the job
(`"fallback_models"`), with a profile, from `manage.py analyze --fallback-model PROVIDER:MODEL`, or from the
server's defaults per model (MODEL_FALLBACKS, JSON `{"gemini-2.5-flash": [{"provider": "openai", "model":
"gpt-4o-mini"}]}`). Here only their shape is checked; whether a provider and model can run a job is the
submission's business (jobs/submission.py), as for the job's own model.

How a chain model sends its calls follows the job's processing (chain_processing): a flex job's chain model runs
flex where it has a flex price; otherwise, and in batch mode (the chain answers with direct calls after the
batch could not), standard calls, which the job's `fallback` must allow.

Pure analysis: no Django.
"""

from __future__ import annotations

import json
from typing import Any

from analysis.engine.model_info import ModelInfo
from analysis.engine.processing import FALLBACK_STANDARD, FLEX, STANDARD, mode_refusal

MAX_FALLBACK_MODELS = 3


class ChainError(ValueError):
    """A chain of the wrong shape; `index` is the entry at fault (None: the chain as a whole)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def parse_chain(value: Any) -> list[dict[str, str]]:
    """A chain as given (a JSON list of {"provider", "model"}): providers lower-cased, names stripped."""
    if not isinstance(value, list):
        raise ChainError('must be a list of {"provider", "model"} objects')
    if len(value) > MAX_FALLBACK_MODELS:
        raise ChainError(f"at most {MAX_FALLBACK_MODELS} fallback models (got {len(value)})")
    chain = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"provider", "model"}:
            raise ChainError('must be an object {"provider", "model"}', index)
        provider, model = entry["provider"], entry["model"]
        if not isinstance(provider, str) or not provider.strip() or not isinstance(model, str) or not model.strip():
            raise ChainError("provider and model must be non-empty strings", index)
        if len(provider.strip()) > 32 or len(model.strip()) > 100:
            raise ChainError("provider is at most 32 characters and model at most 100", index)
        if "\x00" in provider + model:
            raise ChainError("must not contain NUL characters", index)
        chain.append({"provider": provider.strip().lower(), "model": model.strip()})
    return chain


def parse_cli_entry(text: str) -> dict[str, str]:
    """`PROVIDER:MODEL` (the first colon splits: a local model may be named "qwen3:8b")."""
    provider, sep, model = text.partition(":")
    if not sep or not provider.strip() or not model.strip():
        raise ChainError(f"{text!r} is not PROVIDER:MODEL (e.g. anthropic:claude-haiku-4-5)")
    return parse_chain([{"provider": provider, "model": model}])[0]


def parse_defaults(text: str) -> dict[str, list[dict[str, str]]]:
    """MODEL_FALLBACKS: a JSON object, model id -> its chain. Raises ChainError naming the model at fault."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ChainError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ChainError('must be a JSON object {"model": [{"provider", "model"}, ...]}')
    defaults = {}
    for model, chain in data.items():
        if not isinstance(model, str) or not model.strip():
            raise ChainError("every key must be a model id")
        try:
            defaults[model.strip()] = parse_chain(chain)
        except ChainError as exc:
            where = f"{model}" if exc.index is None else f"{model}[{exc.index}]"
            raise ChainError(f"{where}: {exc}") from None
    return defaults


def chain_processing(*, processing: str, fallback: str, provider: str, info: ModelInfo) -> str | None:
    """How a chain model sends a job's calls: flex where a flex job's model has the price, else standard when
    the job's fallback allows it; None when neither (a 400 at submit)."""
    if processing == FLEX and mode_refusal(provider=provider, info=info, processing=FLEX) is None:
        return FLEX
    if processing == STANDARD or fallback == FALLBACK_STANDARD:
        return STANDARD
    return None


def chain_refusal(*, processing: str, info: ModelInfo) -> str:
    """Why chain_processing gave None, as a sentence for a 400."""
    if processing == FLEX:
        return (f"{info.name} has no flex price and the job's fallback is fail, so it could only answer at the "
                f"standard price; use a model with a flex price, or fallback standard.")
    return ("The models of a fallback chain answer a batch job's calls directly, at the standard price, once its "
            "batch could not; the job's fallback is fail, which forbids that: use fallback standard.")
