"""Runs the named tasks of one analysis against one provider and model.

Pure analysis: no Django models, no jobs. The caller (jobs, or the one-shot
functions in analysis/analyze.py) hands in the transcript and the tasks and gets
one `TaskOutcome` per task; callbacks let the caller save each outcome the
moment it completes and stop starting new tasks (cancel, cost cap).

The tasks of a job run concurrently (bounded by `concurrency`), so a job of 8
tasks takes about as long as its slowest task. A transcript longer than the
model can read is split on speaker turns and each task runs map-reduce.

Every provider request runs on a `CallPool` (the worker's one pool, shared by all
its jobs, or a private one for a lone run); the task threads only wait, and every
wait ends when the run's `StopToken` is set (analysis/engine/execution.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

from analysis.engine import prompts, structured
from analysis.engine.chunking import split_transcript
from analysis.engine.execution import CallPool, Stopped, StopToken
from analysis.engine.limits import ProviderLimiter
from analysis.engine.planning import (
    RunConfig, TaskSpec, group_partials, output_limit, prompt_budget, prompt_tokens, reduce_budget,
)
from analysis.engine.pricing import cost_of
from analysis.engine.provider_batch_calls import BatchCalls
from analysis.engine.providers.base import RATE_LIMIT, Completion, GenerationParams, Prompt, Provider, ProviderError
from analysis.engine.providers.usage import Usage
from analysis.engine.retry import CallFailed, call_with_retries
from analysis.engine.tokens import context_tokens

logger = logging.getLogger(__name__)


@dataclass
class TaskOutcome:
    name: str
    text: str = ""
    error: str = ""
    error_kind: str = ""
    usage: Usage = field(default_factory=Usage)
    cost: Decimal = Decimal("0")
    tries: int = 0
    calls: int = 0
    chunks: int = 1
    reused: bool = False
    truncated: bool = False
    blocked: bool = False
    finish_reason: str = ""
    latency_s: float = 0.0
    last_error: str = ""  # the last failed try's message, also when a retry then succeeded
    priced_at: dt.datetime | None = None  # the time whose prices billed every call of the task
    skipped: bool = False  # never started (job canceled, cost cap reached)

    @property
    def ok(self) -> bool:
        return not self.error and not self.skipped

    def metadata(self) -> dict:
        return {
            "cost": self.cost,
            "usage": self.usage.as_dict(),
            "tries": self.tries,
            "calls": self.calls,
            "chunks": self.chunks,
            "reused": self.reused,
            "truncated": self.truncated,
            "blocked": self.blocked,
            "finish_reason": self.finish_reason,
            "latency_s": round(self.latency_s, 3),
            "last_error": self.last_error or None,
        }


@dataclass
class RunHooks:
    """Callbacks from the runner to its caller. All optional; called from worker threads."""

    should_start: Callable[[str], bool] | None = None  # False: skip this task (cancel, cost cap)
    on_done: Callable[[TaskOutcome], None] | None = None  # not called for a task its run's stop abandoned
    on_call: Callable[[str], None] | None = None  # a request of this task is about to go out


class _TaskState:
    """Figures accumulated over the calls of one task (map, reduce and retries).

    Map calls of a chunked task run in parallel threads: every update goes through the lock.
    """

    def __init__(self, name: str, deadline: float) -> None:
        self.name = name
        self.deadline = deadline  # time.monotonic() after which no try or wait starts
        # Every call of the task is billed at the price in force when the task started (the task's
        # started_at), so the one price date stored with the task describes all of its cost.
        self.priced_at = dt.datetime.now(dt.UTC)
        self.lock = threading.Lock()
        self.usage = Usage()
        self.cost = Decimal("0")
        self.tries = 0
        self.calls = 0
        self.truncated = False
        self.finish_reasons: list[str] = []
        self.last_error = ""
        self.params: GenerationParams | None = None  # this task's own (a schema), else the run's

    def note_error(self, message: str) -> None:
        with self.lock:
            self.last_error = message


class Runner:
    def __init__(self, config: RunConfig, provider: Provider, *, limiter: ProviderLimiter | None = None,
                 hooks: RunHooks | None = None, call_pool: CallPool | None = None,
                 stop: StopToken | None = None, batch: BatchCalls | None = None) -> None:
        self.config = config
        self.provider = provider
        self.limiter = limiter
        self.hooks = hooks or RunHooks()
        self.call_pool = call_pool
        self.stop = stop or StopToken()
        info = config.model
        self.max_output = output_limit(config)
        self.context = config.context
        self.params = GenerationParams(max_output_tokens=self.max_output,
                                       temperature=config.temperature if info.accepts_temperature else None,
                                       reasoning_model=info.reasoning_model)
        # Flex (analysis/engine/processing.py): the same requests on the provider's flex tier, with its longer timeout.
        self.flex = config.processing == "flex"
        # Batch mode (jobs/worker/provider_batch_poller.py): requests answered through provider batches instead of _send.
        self.batch = batch

    def count(self, text: str) -> int:
        # Never below chars/4, even where the real encoding counts fewer (OpenAI): see tokens.context_tokens.
        return context_tokens(text, provider=self.config.provider, model=self.config.model.name)

    # --- one provider call ------------------------------------------------------------
    def _call(self, state: _TaskState, prompt: Prompt) -> Completion:
        # The last line of defence: whatever the planning above did, no request over the context is sent.
        tokens = prompt_tokens(prompt, self.count)
        if tokens + self.max_output > self.context:
            raise ProviderError(self.config.provider, "context_length",
                                f"A request of {tokens} tokens plus {self.max_output} for the answer would exceed "
                                f"{self.config.model.name}'s context of {self.context} tokens")
        params = state.params or self.params
        processing = "standard"
        if self.batch is not None:
            # Batch mode: answered from the job's provider batches, or registered for the next one (the
            # task stops here: AwaitingBatch). None: the batch could not answer it and the job's fallback is
            # standard: it is sent now, like any standard call.
            answer = self.batch.answer(state.name, prompt, params)
            if answer is not None:
                return self._billed(state, answer.completion, tries=1, processing="batch", at=answer.priced_at)
        elif self.flex:
            processing = "flex"
            params = dataclasses.replace(params, service_tier="flex", timeout=self.config.flex_timeout)

        def attempt(params: GenerationParams = params) -> Completion:
            self.stop.check()  # a stopped run starts no request
            lease = None
            if self.limiter is not None:
                lease = self.limiter.acquire(self.config.provider, deadline=state.deadline, sleep=self.stop.sleep)
            try:
                # Reported only once the request is about to go out (after any wait for a rate-limit
                # slot): a worker killed while waiting has no call in flight to count as lost.
                if self.hooks.on_call:
                    self.hooks.on_call(state.name)
                future = self._send(prompt, lease, params)
            except BaseException:
                if self.limiter is not None:
                    self.limiter.release(self.config.provider, lease)
                raise
            # A stop abandons the request: its pool thread returns when the SDK does (its request
            # timeout bounds that) and releases the lease then.
            return self.stop.result(future)

        def note(_attempt: int, error: ProviderError | None) -> None:
            if error:
                state.note_error(error.message)

        # Flex capacity refusals (429) are retried with backoff for half the task's budget, so that a standard
        # fallback still has time for its own retries.
        deadline = state.deadline
        if processing == "flex" and self.config.fallback == "standard":
            deadline = min(deadline, time.monotonic() + self.config.policy.max_total / 2)
        try:
            result = call_with_retries(attempt, policy=self.config.policy, deadline=deadline,
                                       sleep=self.stop.sleep, on_try=note)
        except CallFailed as failed:
            with state.lock:
                state.tries += failed.tries
            if not (processing == "flex" and failed.error.kind == RATE_LIMIT):
                raise
            if self.config.fallback != "standard":
                raise CallFailed(ProviderError(self.config.provider, failed.error.kind,
                                               f"Flex capacity unavailable, and the job's fallback is fail: "
                                               f"{failed.message}"), tries=0, elapsed=failed.elapsed,
                                 gave_up=False) from failed
            # The flex tier refused for good: the job's fallback sends it standard, at the standard price.
            logger.info("flex refused for task %s; sending it standard (fallback)", state.name)
            processing = "standard"
            try:
                result = call_with_retries(lambda: attempt(dataclasses.replace(params, service_tier=None,
                                                                               timeout=None)),
                                           policy=self.config.policy, deadline=state.deadline,
                                           sleep=self.stop.sleep, on_try=note)
            except CallFailed as again:
                with state.lock:
                    state.tries += again.tries
                raise
        return self._billed(state, result.completion, tries=result.tries, processing=processing)

    def _billed(self, state: _TaskState, completion: Completion, *, tries: int, processing: str,
                at: dt.datetime | None = None) -> Completion:
        """Count and bill one answered call (at its mode's price in force at `at`, else at the task's start)."""
        cost = cost_of(self.config.model, completion.usage, at=at or state.priced_at, processing=processing)
        with state.lock:
            if at is not None and at < state.priced_at:
                state.priced_at = at  # the task's price date: its first batch's submission
            state.tries += tries
            state.calls += 1
            # Every successful call is billed, whatever its finish state (truncated and blocked ones too).
            state.usage = state.usage + completion.usage
            state.cost += cost
            if completion.truncated:
                state.truncated = True
            if completion.finish_reason:
                state.finish_reasons.append(completion.finish_reason)
        if completion.blocked:
            raise ProviderError(self.config.provider, "blocked",
                                f"{self.provider.label} blocked the answer ({completion.finish_reason or 'no reason given'})")
        return completion

    def _send(self, prompt: Prompt, lease: str | None, params: GenerationParams) -> Future[Completion]:
        def send() -> Completion:
            try:
                return self.provider.complete(model=self.config.model.name, prompt=prompt, params=params)
            finally:
                if self.limiter is not None:
                    self.limiter.release(self.config.provider, lease)

        assert self.call_pool is not None, "Runner.run() provides a pool"
        return self.call_pool.submit(send)

    def _gather(self, calls: list[Callable[[], str]]) -> list[str]:
        """Run `calls` (each one provider call, waits included) side by side, at most chunk_concurrency
        at a time, on threads of this task: the requests themselves go to the call pool."""
        if len(calls) == 1:
            return [calls[0]()]
        with ThreadPoolExecutor(max_workers=max(1, min(self.config.chunk_concurrency, len(calls)))) as pool:
            futures = [pool.submit(call) for call in calls]
            return [self.stop.result(future) for future in futures]

    # --- one task -----------------------------------------------------------------------
    def prompt_budget(self, spec: TaskSpec) -> int:
        """Tokens left for the transcript in a request for this task."""
        return prompt_budget(self.config, spec, self.count)

    def run_task(self, spec: TaskSpec, transcript: str, transcript_tokens: int) -> TaskOutcome:
        started = time.monotonic()
        # One deadline for the whole task (all its calls, retries and waits): PROVIDER_RETRY_MAX_TOTAL.
        state = _TaskState(spec.name, deadline=started + self.config.policy.max_total)
        outcome = TaskOutcome(name=spec.name)
        # A task with a schema, citations or a language (analysis/engine/structured.py): its own instruction,
        # transcript (turn numbers) and output format; a plain prompt is sent as it is.
        request = structured.decode_task(spec.prompt)
        stored_transcript = transcript  # turn N is its line N, whatever the prompt shows
        if not request.plain:
            spec = TaskSpec(name=spec.name, prompt=structured.instruction(request))
            state.params = structured.params_for(request, name=spec.name, params=self.params)
            if request.cites:
                transcript = structured.transcript_for(request, transcript)
                transcript_tokens = self.count(prompts.transcript_document(transcript))
        try:
            budget = self.prompt_budget(spec)
            if budget <= 0:
                raise ProviderError(self.config.provider, "context_length",
                                    f"The task prompt and output limit leave no room for the transcript in "
                                    f"{self.config.model.name}'s context of {self.context} tokens")
            if transcript_tokens <= budget:
                prompt = prompts.task_prompt(system_prompt=self.config.system_prompt, transcript=transcript,
                                             instruction=spec.prompt)
                outcome.text = self._call(state, prompt).text
            else:
                outcome.text, outcome.chunks = self._map_reduce(state, spec, transcript, budget)
            if request.structured:
                outcome.text = self._checked(state, request, outcome.text, stored_transcript)
        except Stopped:
            raise
        except CallFailed as failed:
            outcome.error, outcome.error_kind = failed.message, failed.error.kind
        except ProviderError as error:
            outcome.error, outcome.error_kind = error.message, error.kind
            outcome.blocked = error.kind == "blocked"
        except structured.AnswerError as error:
            outcome.error, outcome.error_kind = str(error), "invalid_answer"
        except Exception as exc:  # a bug or an SDK surprise: fail this task, keep the others
            logger.exception("task %s failed unexpectedly", spec.name)
            outcome.error, outcome.error_kind = f"Internal error: {type(exc).__name__}", "internal"
        outcome.usage, outcome.cost = state.usage, state.cost
        outcome.tries, outcome.calls = state.tries, state.calls
        outcome.last_error = state.last_error
        outcome.priced_at = state.priced_at
        outcome.truncated = state.truncated
        outcome.finish_reason = state.finish_reasons[-1] if state.finish_reasons else ""
        outcome.latency_s = time.monotonic() - started
        return outcome

    def _checked(self, state: _TaskState, request: structured.TaskRequest, text: str, transcript: str) -> str:
        """A structured answer validated (one repair call if it fails) and its citations checked."""
        system = self.config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT

        def repair(answer: str, problem: str) -> str:
            return self._call(state, structured.repair_prompt(system=system, request=request, answer=answer,
                                                              problem=problem)).text

        return structured.finish(text, request, transcript=transcript, repair=repair)

    def _map_reduce(self, state: _TaskState, spec: TaskSpec, transcript: str, budget: int) -> tuple[str, int]:
        """Map: every chunk answered at once. Reduce: the partial answers merged, level by level while
        they do not fit one request. Returns (answer, number of chunks)."""
        system = self.config.system_prompt
        chunks = split_transcript(transcript, max_tokens=budget, count=self.count,
                                  overlap_tokens=min(self.config.overlap_tokens, budget // 10))
        if len(chunks) == 1:
            # Only the <transcript> wrapper, counted twice in the plan, tipped it over: its text fits.
            return self._call(state, prompts.task_prompt(system_prompt=system, transcript=chunks[0],
                                                         instruction=spec.prompt)).text, 1
        partials = self._gather([
            (lambda part=part, chunk=chunk: self._call(state, prompts.map_prompt(
                system_prompt=system, chunk=chunk, instruction=spec.prompt, part=part, parts=len(chunks))).text)
            for part, chunk in enumerate(chunks, 1)
        ])
        room = reduce_budget(self.config, spec, self.count)
        while True:
            groups = group_partials(partials, max_tokens=room, count=self.count)
            if len(groups) == 1:
                return self._call(state, prompts.reduce_prompt(system_prompt=system, partials=groups[0],
                                                               instruction=spec.prompt)).text, len(chunks)
            if len(groups) >= len(partials):
                # No two answers fit one request together: another level would not shrink them.
                raise ProviderError(self.config.provider, "context_length",
                                    f"The partial answers are too long to merge within {self.config.model.name}'s "
                                    f"context of {self.context} tokens; set a lower max_output_tokens")
            partials = self._gather([
                (lambda group=group: self._call(state, prompts.reduce_prompt(
                    system_prompt=system, partials=group, instruction=spec.prompt)).text)
                for group in groups
            ])

    # --- all tasks ----------------------------------------------------------------------
    def run(self, transcript: str, tasks: list[TaskSpec]) -> list[TaskOutcome]:
        """One outcome per task, in order. A task the stop token abandoned (or never started) comes
        back `skipped`, without on_done: the caller stores nothing for it."""
        if not tasks:
            return []
        if self.call_pool is None:
            # A lone run (analyze_transcript_task, a forked work horse): a pool of its own, as wide as
            # the calls it can have in flight at once.
            size = min(self.config.concurrency, len(tasks)) * self.config.chunk_concurrency
            self.call_pool = CallPool(max(1, min(size, 64)), name="run-call")
            try:
                return self.run(transcript, tasks)
            finally:
                self.call_pool.shutdown(wait=False)
                self.call_pool = None
        transcript_tokens = self.count(prompts.transcript_document(transcript))

        def one(spec: TaskSpec) -> TaskOutcome:
            try:
                if self.stop.stopped or (self.hooks.should_start and not self.hooks.should_start(spec.name)):
                    outcome = TaskOutcome(name=spec.name, skipped=True, chunks=0)
                else:
                    outcome = self.run_task(spec, transcript, transcript_tokens)
                self.stop.check()
                if self.hooks.on_done:
                    self.hooks.on_done(outcome)
                return outcome
            except Stopped:
                return TaskOutcome(name=spec.name, skipped=True, chunks=0)

        if len(tasks) == 1 or self.config.concurrency == 1:
            return [one(spec) for spec in tasks]
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(tasks))) as pool:
            futures = [pool.submit(one, spec) for spec in tasks]
            return [future.result() for future in futures]

