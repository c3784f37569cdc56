"""Token usage, normalized across providers.

Every provider reports usage differently: which totals include cached or reasoning tokens, which fields
may be None. Each provider module turns its SDK's usage block into a `Usage` with the normalizer below,
so that usage leaves the provider layer with fields that never overlap: each token counted once, under
the rate it is billed at. A mistake here bills tokens twice or not at all, so the rules live in one
place and are tested against hand-computed numbers (tests/analysis/test_pricing.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Usage:
    # The field order is the order of a price's rates (RATE_KINDS in analysis/engine/model_info.py).
    input_tokens: int = 0  # input billed at the full rate (no cache reads, no cache writes)
    cached_input_tokens: int = 0  # cache reads
    cache_write_tokens: int = 0  # cache creation (Anthropic)
    output_tokens: int = 0  # visible output, without reasoning
    reasoning_tokens: int = 0  # thinking / reasoning output

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def prompt_tokens(self) -> int:
        """Everything the model read, whatever rate it was billed at."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


USAGE_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Usage))


# Each normalizer takes the SDK's pydantic usage object, the same thing as a plain dict (model_dump(), or
# JSON from a raw HTTP response: Gemini's REST JSON is camelCase, so both spellings are read), or None. Any
# field may be missing or None; that counts as 0. A "part" larger than its "total" (a misbehaving
# OpenAI-compatible server) is capped at the total rather than producing negative tokens.


def _field(block: Any, *names: str) -> Any:
    """The first of `names` that is present and not None on a dict or an object; None otherwise."""
    if block is None:
        return None
    for name in names:
        value = block.get(name) if isinstance(block, Mapping) else getattr(block, name, None)
        if value is not None:
            return value
    return None


def _count(block: Any, *names: str) -> int:
    value = _field(block, *names)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"token count {names[0]} is a boolean: {value!r}")
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"token count {names[0]} is not a number: {value!r}") from None
    return max(count, 0)


def usage_from_openai(usage: Any) -> Usage:
    """OpenAI chat completions (and the Responses API's names, for OpenAI-compatible servers that use them).

    prompt_tokens INCLUDES prompt_tokens_details.cached_tokens, and completion_tokens INCLUDES
    completion_tokens_details.reasoning_tokens: subtract, or cached tokens are billed at both rates.
    """
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    completion = _count(usage, "completion_tokens", "output_tokens")
    cached = min(_count(_field(usage, "prompt_tokens_details", "input_tokens_details"), "cached_tokens"), prompt)
    reasoning = min(
        _count(_field(usage, "completion_tokens_details", "output_tokens_details"), "reasoning_tokens"), completion
    )
    return Usage(
        input_tokens=prompt - cached,
        cached_input_tokens=cached,
        output_tokens=completion - reasoning,
        reasoning_tokens=reasoning,
    )


def usage_from_anthropic(usage: Any) -> Usage:
    """Anthropic Messages.

    input_tokens EXCLUDES cache_read_input_tokens and cache_creation_input_tokens: the three are disjoint and
    each has its own rate. output_tokens INCLUDES extended-thinking tokens (output_tokens_details.
    thinking_tokens, when the API reports it), which are split out as reasoning.

    Cache writes are all counted at the 5-minute write price: Usage has one write field, and ScriptRipper
    only asks for the default 5-minute TTL. (A 1-hour write costs 2x input, not 1.25x.)
    """
    writes = _field(usage, "cache_creation_input_tokens")
    if writes is None:
        # Older/newer payloads may carry only the per-TTL breakdown.
        breakdown = _field(usage, "cache_creation")
        write_tokens = _count(breakdown, "ephemeral_5m_input_tokens") + _count(breakdown, "ephemeral_1h_input_tokens")
    else:
        write_tokens = _count(usage, "cache_creation_input_tokens")
    output = _count(usage, "output_tokens")
    thinking = min(_count(_field(usage, "output_tokens_details"), "thinking_tokens"), output)
    return Usage(
        input_tokens=_count(usage, "input_tokens"),
        cached_input_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_tokens=write_tokens,
        output_tokens=output - thinking,
        reasoning_tokens=thinking,
    )


def usage_from_gemini(usage_metadata: Any) -> Usage:
    """Gemini (google-genai usage_metadata, or REST usageMetadata).

    prompt_token_count INCLUDES cached_content_token_count; candidates_token_count EXCLUDES
    thoughts_token_count (thoughts are billed as output, so they are reasoning here, added, not subtracted);
    tool_use_prompt_token_count is input the model read on top of the prompt. usage_metadata itself is None
    on some responses (blocked prompts, some streaming chunks): that is zero usage, not an error.
    """
    prompt = _count(usage_metadata, "prompt_token_count", "promptTokenCount")
    cached = min(_count(usage_metadata, "cached_content_token_count", "cachedContentTokenCount"), prompt)
    tool_use = _count(usage_metadata, "tool_use_prompt_token_count", "toolUsePromptTokenCount")
    return Usage(
        input_tokens=prompt - cached + tool_use,
        cached_input_tokens=cached,
        output_tokens=_count(usage_metadata, "candidates_token_count", "candidatesTokenCount"),
        reasoning_tokens=_count(usage_metadata, "thoughts_token_count", "thoughtsTokenCount"),
    )
