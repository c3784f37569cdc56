"""What a job will read and what it can cost, before anything runs.

`estimate_job` plans the very calls the Runner would make (the same prompt
budget, the same chunking when the transcript exceeds the model's effective
context, the same map-reduce) and prices them with
`pricing.estimate_cost_range`:

- lowest: every prompt read from the provider's cache where the provider can
  cache it, one output token a call;
- highest: nothing cached (Anthropic: every prompt written to the cache, at
  1.25x input), every call spending its whole output limit.

Token counts come from analysis.engine.tokens: exact for OpenAI models (the real
o200k/cl100k encodings, offline), a documented upper approximation for Gemini,
Anthropic and unknown models. Counting high only widens the range upwards,
which is the safe direction for a spending check.

Pure analysis: no Django models, no provider calls. Used by
`POST /api/v1/jobs/estimate` and by the spending checks before a job is
accepted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from analysis.engine import prompts
from analysis.engine.chunking import split_transcript
from analysis.engine.planning import (
    PARTIAL_WRAPPER_TOKENS, RunConfig, TaskSpec, output_limit, prompt_budget, prompt_tokens, reduce_budget,
)
from analysis.engine.pricing import estimate_cost_range
from analysis.engine.processing import PROCESSING_MODES, modes_offered
from analysis.engine.tokens import MESSAGE_OVERHEAD_TOKENS, context_tokens, count_tokens


@dataclass
class TaskEstimate:
    name: str
    calls: int = 0  # provider calls planned (map + reduce when chunked), at most
    chunks: int = 1
    input_tokens: int = 0  # prompt tokens over all planned calls (at most)
    input_tokens_per_call: list[int] = field(default_factory=list)
    cost_low: Decimal = Decimal("0")
    cost_high: Decimal = Decimal("0")
    error: str = ""  # the task cannot run as asked (e.g. no room for the transcript)
    # (cost_low, cost_high) in every processing mode the model offers; cost_low/high are the job's mode's.
    by_processing: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


@dataclass
class Estimate:
    provider: str
    model: str
    price_unknown: bool  # no price known (an unlisted model, an endpoint without prices): the costs are 0
    token_count: str  # "exact" (OpenAI encodings) or "approximate" (an upper estimate)
    context_tokens: int  # the most prompt tokens one request may carry for this model here
    transcript_tokens: int
    max_output_tokens: int  # the output limit sent with every call
    tasks: list[TaskEstimate]
    processing: str = "standard"
    # The same job priced on each model of its fallback chain, alone (in the mode that model would run it in).
    fallbacks: list[Estimate] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.tasks)

    @property
    def input_tokens(self) -> int:
        return sum(t.input_tokens for t in self.tasks)

    @property
    def input_tokens_per_call(self) -> list[int]:
        return [n for t in self.tasks for n in t.input_tokens_per_call]

    @property
    def modes(self) -> list[str]:
        """The processing modes every task was priced in (the model's)."""
        found = [set(t.by_processing) for t in self.tasks if not t.error]
        return [m for m in PROCESSING_MODES if found and all(m in f for f in found)]

    @property
    def max_output_tokens_total(self) -> int:
        return self.calls * self.max_output_tokens

    @property
    def cost_low(self) -> Decimal:
        return sum((t.cost_low for t in self.tasks), Decimal("0"))

    @property
    def cost_high(self) -> Decimal:
        return sum((t.cost_high for t in self.tasks), Decimal("0"))

    @property
    def most_expensive(self) -> Estimate:
        """The estimate of the chain's model that can cost the most: what the spending checks hold the job to,
        whichever model ends up answering."""
        return max([self, *self.fallbacks], key=lambda estimate: estimate.cost_high)

    @property
    def chain_cost_low(self) -> Decimal:
        """The least the job can cost on any model of its chain."""
        return min(estimate.cost_low for estimate in [self, *self.fallbacks])

    @property
    def chain_cost_high(self) -> Decimal:
        return self.most_expensive.cost_high

    @property
    def by_processing(self) -> dict[str, dict[str, Decimal]]:
        """The same calls priced in each processing mode the model offers (batch and flex bill each token
        kind at its own rate; a kind without one stays at the standard rate)."""
        return {mode: {"cost_low": sum((t.by_processing[mode][0] for t in self.tasks), Decimal("0")),
                       "cost_high": sum((t.by_processing[mode][1] for t in self.tasks), Decimal("0"))}
                for mode in self.modes}


def estimate_run(*, config: RunConfig, transcript: str, tasks: list[TaskSpec],
                 transcript_tokens: int | None = None) -> Estimate:
    """Plan and price a job's calls under `config`; `transcript_tokens`: the transcript document's tokens if the
    caller counted them already."""
    info = config.model

    def count(text: str) -> int:  # the tokens billed
        return count_tokens(text, provider=config.provider, model=info.name)

    def plan_count(text: str) -> int:
        # As Runner.count: never below chars/4 (tokens.context_tokens), so the chunks planned are the run's.
        return context_tokens(text, provider=config.provider, model=info.name)

    max_output = output_limit(config)
    document = prompts.transcript_document(transcript)
    if transcript_tokens is None:
        transcript_tokens = count(document)
    # plan_count of the document, from the one count.
    plan_tokens = max(transcript_tokens, math.ceil(len(document) / 4))
    chunk_cache: dict[int, list[str]] = {}
    planned = [_plan_task(config, spec, transcript, transcript_tokens, count, max_output, chunk_cache,
                          plan_count=plan_count, plan_tokens=plan_tokens)
               for spec in tasks]
    # Every OpenAI model in the catalogue has a known encoding (gpt-4o, gpt-4.1, gpt-5: o200k_base);
    # an unlisted model behind an OpenAI-compatible server is counted with an approximation.
    exact = config.provider == "openai" and info.listed
    return Estimate(
        provider=config.provider,
        model=info.name,
        price_unknown=not info.listed,
        token_count="exact" if exact else "approximate",
        context_tokens=config.context_limit or info.context_window,
        transcript_tokens=transcript_tokens,
        max_output_tokens=max_output,
        tasks=planned,
        processing=config.processing,
    )


def _plan_task(config: RunConfig, spec: TaskSpec, transcript: str, transcript_tokens: int,
               count: Callable[[str], int], max_output: int, chunk_cache: dict[int, list[str]], *,
               plan_count: Callable[[str], int], plan_tokens: int) -> TaskEstimate:
    estimate = TaskEstimate(name=spec.name)
    budget = prompt_budget(config, spec, plan_count)
    if budget <= 0:
        estimate.chunks = 0
        estimate.error = (f"The task prompt and output limit leave no room for the transcript in "
                          f"{config.model.name}'s context of {config.context_limit or config.model.context_window} tokens")
        return estimate

    if plan_tokens <= budget:
        # One call: count the fixed parts and add the transcript counted once for all tasks.
        bare = prompts.task_prompt(system_prompt=config.system_prompt, transcript="", instruction=spec.prompt)
        document_tokens = transcript_tokens
        tokens = count(bare.system) + document_tokens + count(bare.instruction) + MESSAGE_OVERHEAD_TOKENS
        low_prompts = high_prompts = [tokens]
    else:
        if budget not in chunk_cache:
            chunk_cache[budget] = split_transcript(transcript, max_tokens=budget, count=plan_count,
                                                   overlap_tokens=min(config.overlap_tokens, budget // 10))
        chunks = chunk_cache[budget]
        estimate.chunks = len(chunks)
        if len(chunks) == 1:
            # As Runner._map_reduce: only the <transcript> wrapper tipped it over; one plain call, no reduce.
            one = [prompt_tokens(prompts.task_prompt(system_prompt=config.system_prompt, transcript=chunks[0],
                                                     instruction=spec.prompt), count)]
            return priced(config, estimate, one, one, max_output)
        maps = [prompt_tokens(prompts.map_prompt(system_prompt=config.system_prompt, chunk=chunk,
                                                 instruction=spec.prompt, part=i, parts=len(chunks)), count)
                for i, chunk in enumerate(chunks, 1)]
        # Reduce requests carry the partial answers: 1 token each at best, the whole output limit at worst.
        low_prompts = maps + _reduce_calls(config, spec, count, plan_count, len(chunks), partial_tokens=1)
        high_prompts = maps + _reduce_calls(config, spec, count, plan_count, len(chunks), partial_tokens=max_output)

    return priced(config, estimate, low_prompts, high_prompts, max_output)


def priced(config: RunConfig, estimate: TaskEstimate, low_prompts: list[int], high_prompts: list[int],
           max_output: int) -> TaskEstimate:
    """The task's calls priced: at their lowest (`low_prompts`' prompt tokens, all cached where the provider can,
    one output token each) and at their highest (`high_prompts`, nothing cached, every output limit spent)."""
    estimate.calls = len(high_prompts)
    estimate.input_tokens_per_call = high_prompts
    estimate.input_tokens = sum(high_prompts)
    for mode in modes_offered(provider=config.provider, info=config.model):
        low, _ = estimate_cost_range(config.model, prompt_tokens_per_call=low_prompts,
                                     max_output_per_call=[max_output] * len(low_prompts), processing=mode)
        _, high = estimate_cost_range(config.model, prompt_tokens_per_call=high_prompts,
                                      max_output_per_call=[max_output] * len(high_prompts), processing=mode)
        estimate.by_processing[mode] = (low, high)
    estimate.cost_low, estimate.cost_high = estimate.by_processing.get(
        config.processing, estimate.by_processing["standard"])
    return estimate


def _reduce_calls(config: RunConfig, spec: TaskSpec, count: Callable[[str], int], plan_count: Callable[[str], int],
                  partials: int, *, partial_tokens: int) -> list[int]:
    """Prompt tokens of each reduce call the Runner makes for `partials` answers of `partial_tokens` each."""
    empty = prompts.reduce_prompt(system_prompt=config.system_prompt, partials=[""], instruction=spec.prompt)
    return reduce_calls(partials, partial_tokens=partial_tokens, fixed=prompt_tokens(empty, count),
                        room=reduce_budget(config, spec, plan_count))  # room as Runner._map_reduce


def reduce_calls(partials: int, *, partial_tokens: int, fixed: int, room: int) -> list[int]:
    """Prompt tokens of each reduce call that merges `partials` answers of `partial_tokens` each, level by level,
    with `fixed` tokens around the answers of a request and `room` for them."""
    size = partial_tokens + PARTIAL_WRAPPER_TOKENS
    calls: list[int] = []
    while True:
        # Greedy packing, as planning.group_partials: how many partials fit one request.
        per_group = max(1, room // size) if room > 0 else 1
        groups = -(-partials // per_group)
        if groups >= partials and partials > 1:
            return calls  # the Runner gives up here (answers too long to merge); no further calls
        if groups == 1:
            calls.append(fixed + partials * size)
            return calls
        full, rest = divmod(partials, per_group)
        calls.extend([fixed + per_group * size] * full)
        if rest:
            calls.append(fixed + rest * size)
        partials = groups
