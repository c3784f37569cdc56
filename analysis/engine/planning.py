"""What the requests of a run carry: the output limit, the tokens left for the transcript, the reduce groups.

Shared by the Runner (analysis/engine/runner.py), which sends the requests, and by the estimate
(analysis/engine/estimate.py), which prices them before anything runs: both plan with the same functions, so the
estimate plans exactly the calls the run makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.engine import prompts
from analysis.engine.chunking import pack, split_transcript
from analysis.engine.model_info import ModelInfo
from analysis.engine.providers.base import Prompt
from analysis.engine.retry import RetryPolicy
from analysis.engine.tokens import MESSAGE_OVERHEAD_TOKENS, token_upper_bound

# The <partial_answer part="N"> wrapper and separator around each partial answer in a reduce request
# (about 12 tokens at 4 characters a token; the rest is margin).
PARTIAL_WRAPPER_TOKENS = 20


@dataclass(frozen=True)
class TaskSpec:
    name: str
    prompt: str  # as stored: a plain prompt, or a structured task's envelope (analysis/engine/structured.py)


@dataclass(frozen=True)
class RunConfig:
    provider: str
    model: ModelInfo
    system_prompt: str = ""
    max_output_tokens: int | None = None
    temperature: float | None = None
    context_limit: int | None = None  # effective context (catalogue, MAX_PROMPT_TOKENS, overrides)
    concurrency: int = 8
    # Map calls of one chunked task in parallel (CHUNK_CONCURRENCY): all chunks in one round keeps a long
    # transcript at about two calls' latency (map, then reduce); the provider limiter bounds the total.
    chunk_concurrency: int = 16
    overlap_tokens: int = 200
    default_max_output_tokens: int = 8192
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    processing: str = "standard"  # analysis/engine/processing.py: standard, flex or batch
    fallback: str = "standard"  # what a call its mode cannot finish does: standard or fail
    flex_timeout: float | None = None  # seconds one flex request may take (FLEX_REQUEST_TIMEOUT)
    # With a fallback chain, the seconds a model may go on failing for one task (from its first failed try)
    # before the task moves to the next model (FALLBACK_AFTER_SECONDS); the last model has the rest of the budget.
    fallback_after: float = 30.0

    @property
    def context(self) -> int:
        """The most tokens one request may carry, prompt and answer together."""
        return self.context_limit or self.model.context_window


def output_limit(config: RunConfig) -> int:
    """The output limit sent with every call: the job's, else the default, never above the model's.

    The output limit is reserved out of the context (a model's context holds prompt and answer). Without
    a limit given on the job, a small context (a local model, MODEL_CONTEXT_OVERRIDES, MAX_PROMPT_TOKENS)
    reserves at most a quarter of itself: 8,192 of a 16,000-token context would halve every chunk for an
    output that is rarely that long.
    """
    limit = min(config.max_output_tokens or config.default_max_output_tokens, config.model.max_output_tokens)
    if not config.max_output_tokens:
        limit = min(limit, max(256, config.context // 4))
    return limit


def prompt_tokens(prompt: Prompt, count: Callable[[str], int]) -> int:
    """Tokens one request carries: its three parts plus the message framing."""
    return count(prompt.system) + count(prompt.document) + count(prompt.instruction) + MESSAGE_OVERHEAD_TOKENS


def prompt_tokens_at_most(prompt: Prompt) -> int:
    """A bound no provider's prompt_tokens exceeds, found without encoding: a request under a limit by this
    bound needs no count."""
    return (token_upper_bound(prompt.system) + token_upper_bound(prompt.document)
            + token_upper_bound(prompt.instruction) + MESSAGE_OVERHEAD_TOKENS)


def prompt_budget(config: RunConfig, spec: TaskSpec, count: Callable[[str], int]) -> int:
    """Tokens left for the transcript in a request for this task (context - output limit - the rest)."""
    fixed = prompts.task_prompt(system_prompt=config.system_prompt, transcript="", instruction=spec.prompt)
    # The map instruction is longer than the plain one; budget for the longer.
    mapped = prompts.map_prompt(system_prompt=config.system_prompt, chunk="", instruction=spec.prompt,
                                part=999, parts=999)
    overhead = max(prompt_tokens(fixed, count), prompt_tokens(mapped, count))
    return config.context - output_limit(config) - overhead


def reduce_budget(config: RunConfig, spec: TaskSpec, count: Callable[[str], int]) -> int:
    """Tokens left for the wrapped partial answers in one reduce request of this task."""
    empty = prompts.reduce_prompt(system_prompt=config.system_prompt, partials=[], instruction=spec.prompt)
    return config.context - output_limit(config) - prompt_tokens(empty, count)


def group_partials(partials: list[str], *, max_tokens: int, count: Callable[[str], int]) -> list[list[str]]:
    """Consecutive partial answers packed greedily into groups whose reduce request fits `max_tokens`.

    A partial answer too long for a request on its own (an output limit close to the context) is cut
    between lines into pieces that fit, so that no group is ever over the limit.
    """
    limit = max_tokens - PARTIAL_WRAPPER_TOKENS
    if limit <= 0:
        raise ValueError("no room for a partial answer in a reduce request")
    items: list[tuple[str, int]] = []
    for text in partials:
        tokens = count(text)
        if tokens <= limit:
            items.append((text, tokens + PARTIAL_WRAPPER_TOKENS))
        else:
            items += [(piece, count(piece) + PARTIAL_WRAPPER_TOKENS)
                      for piece in split_transcript(text, max_tokens=limit, count=count, overlap_tokens=0)]
    return pack(items, max_tokens)
