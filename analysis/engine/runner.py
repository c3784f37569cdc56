"""Runs the named tasks of one analysis against one provider and model, and its fallback chain.

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

A run may be handed a fallback chain (`ModelRoute`s after the job's own model) and the shared provider health
(analysis/engine/health.py). A task its model cannot answer, for a reason another model may not share
(FALLBACK_KINDS), starts again on the next model of the chain: re-planned for that model (its context window,
so a chunked task is split again; its provider's structured-output field; its price), with every call already
answered on the failed model kept on the task's bill. A model of the chain may go on failing for one task
for `fallback_after` seconds from its first failed try, its requests still in flight then abandoned (counted,
never used); the last model has the rest of the task's one budget (PROVIDER_RETRY_MAX_TOTAL). A model whose
circuit is open gets no request: a task with a later model goes straight to it, a task on its last model waits
for the circuit's probe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from analysis.engine import prompts, structured
from analysis.engine.chunking import split_transcript
from analysis.engine.execution import CallPool, Stopped, StopToken
from analysis.engine.health import ALLOWED, HEALTH_FAILURE_KINDS, Admission, ProviderHealth
from analysis.engine.limits import ProviderLimiter
from analysis.engine.planning import (
    RunConfig, TaskSpec, group_partials, output_limit, prompt_budget, prompt_tokens, prompt_tokens_at_most,
    reduce_budget,
)
from analysis.engine.pricing import cost_of
from analysis.engine.provider_batch_calls import BatchCalls
from analysis.engine.providers.base import (
    AUTH, BLOCKED, CIRCUIT_OPEN, CONNECTION, CONTEXT_LENGTH, MALFORMED, NOT_FOUND, PERMISSION, QUOTA, RATE_LIMIT,
    SERVER, TIMEOUT, Completion, GenerationParams, Prompt, Provider, ProviderError,
)
from analysis.engine.providers.usage import Usage
from analysis.engine.retry import CallFailed, call_with_retries
from analysis.engine.tokens import context_tokens, token_upper_bound

logger = logging.getLogger(__name__)

# Why a task moves to the next model of its chain: the model cannot answer now (overloaded, down, slow, rate
# limited, its circuit open), cannot answer us (no quota, a refused key, the model gone), cannot read the
# request (context_length: only to a later model with a larger window), or refused this answer (blocked). Never
# bad_request: a request that is wrong in itself would be wrong on any model.
# How often a task waiting for an open circuit on its last model asks it again.
PROBE_POLL_S = 1.0
# How often a task waiting to retry a failing model, with a later model to go to, looks whether the model's
# circuit has opened meanwhile (then it moves on at once).
BACKOFF_POLL_S = 0.2

FALLBACK_KINDS = frozenset({RATE_LIMIT, SERVER, TIMEOUT, CONNECTION, MALFORMED, CIRCUIT_OPEN, QUOTA, AUTH,
                            PERMISSION, NOT_FOUND, CONTEXT_LENGTH, BLOCKED})


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
    provider: str = ""  # who answered (a failed task: the last model it tried)
    model: str = ""
    # The models the task moved away from, in order: [{"provider", "model", "reason", "message"}].
    fallback_from: list[dict] = field(default_factory=list)
    # Requests left unanswered when the task moved to another model: paid for, never used (lost calls).
    abandoned_calls: int = 0

    @property
    def ok(self) -> bool:
        return not self.error and not self.skipped

    def metadata(self) -> dict:
        return {
            "provider": self.provider,
            "model": self.model,
            "fallback_from": self.fallback_from,
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
    # A request of this task came back with an error status (5xx, 429, 4xx): no answer, nothing to pay.
    on_call_refused: Callable[[str], None] | None = None


@dataclass(frozen=True)
class ModelRoute:
    """A model that may answer a run's tasks: its provider's client and the run's configuration for it."""

    provider: Provider
    config: RunConfig


class _Model:
    """One model of the chain as the runner uses it: what its requests carry and how its prompts are counted."""

    def __init__(self, route: ModelRoute, *, primary: bool) -> None:
        config, info = route.config, route.config.model
        self.provider = route.provider
        self.config = config
        self.info = info
        self.name = config.provider  # the provider or named endpoint
        self.model = info.name
        self.label = f"{route.provider.label} {info.name}"
        self.primary = primary
        self.max_output = output_limit(config)
        self.context = config.context
        self.flex = config.processing == "flex"
        self.params = GenerationParams(max_output_tokens=self.max_output,
                                       temperature=config.temperature if info.accepts_temperature else None,
                                       reasoning_model=info.reasoning_model)
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        # Never below chars/4, even where the real encoding counts fewer (OpenAI): see tokens.context_tokens.
        if len(text) <= _SHORT_TEXT:
            return _short_context_tokens(text, self.name, self.model)
        return context_tokens(text, provider=self.name, model=self.model)

    def document_tokens(self, transcript: str) -> int:
        """The transcript document's tokens for this model, counted once per run."""
        with self._lock:
            if transcript not in self._tokens:
                self._tokens = {transcript: self.count(prompts.transcript_document(transcript))}
            return self._tokens[transcript]

    def document_fits(self, transcript: str, budget: int) -> bool:
        """Whether the transcript document fits in `budget` tokens. Most transcripts are far under a context:
        the bound of every provider's count settles it without encoding them."""
        if token_upper_bound(prompts.transcript_document(transcript)) <= budget:
            return True
        return self.document_tokens(transcript) <= budget


# Instructions, system prompts and the empty prompts a budget is planned with recur from job to job: their
# counts are kept (the transcripts, long and each different, are not).
_SHORT_TEXT = 1_000


@functools.lru_cache(maxsize=256)
def _short_context_tokens(text: str, provider: str, model: str) -> int:
    return context_tokens(text, provider=provider, model=model)


class TaskState:
    """Figures accumulated over the calls of one task (map, reduce, retries, every model it tried), and the model
    it is on now.

    Map calls of a chunked task run in parallel threads: every update goes through the lock.
    """

    def __init__(self, name: str, deadline: float, stop: StopToken) -> None:
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
        self.abandoned = 0
        self.truncated = False
        self.finish_reasons: list[str] = []
        self.last_error = ""
        self.last_kind = ""
        self.chunks = 1  # pieces of the transcript read on the model that answered (more than one: map-reduce)
        self._run_stop = stop
        # The model the task is on, and what its calls on it share: their own stop token (stopped when the task
        # leaves the model, so that sibling map calls stop waiting), the params of a task with a schema, and the
        # end of the model's time slice once one of its tries failed (None: not started, or the last model).
        self.model: _Model | None = None
        self.last = True
        self.stop = stop
        self.params: GenerationParams | None = None
        self.slice_end: float | None = None

    def enter(self, model: _Model, *, last: bool) -> None:
        self.model, self.last = model, last
        self.stop = self._run_stop.child()
        self.params = None
        self.chunks = 1
        self.slice_end = None

    def leave(self) -> None:
        # Whatever of this model's calls is still running ends its wait now: its requests are abandoned.
        self.stop.stop("the task moved to another model")
        self._run_stop.release(self.stop)

    def note_error(self, message: str, kind: str = "") -> None:
        with self.lock:
            self.last_error = message
            self.last_kind = kind or self.last_kind

    def failed_try(self) -> None:
        """A try on the current model failed: its time slice runs from the first, unless it is the last model."""
        with self.lock:
            if self.slice_end is None and not self.last:
                self.slice_end = time.monotonic() + self.model.config.fallback_after

    def deadline_now(self) -> float:
        """When the current model's waits must end: the task's deadline, or its time slice's end once running."""
        slice_end = self.slice_end
        return self.deadline if slice_end is None else min(self.deadline, slice_end)

    def wait_limit(self) -> float | None:
        """How long a request in flight may still be waited for (None: until it returns by itself)."""
        slice_end = self.slice_end
        return None if slice_end is None else max(0.0, slice_end - time.monotonic())

    def abandoned_call(self) -> None:
        with self.lock:
            self.abandoned += 1


class Runner:
    def __init__(self, config: RunConfig, provider: Provider, *, limiter: ProviderLimiter | None = None,
                 hooks: RunHooks | None = None, call_pool: CallPool | None = None,
                 stop: StopToken | None = None, batch: BatchCalls | None = None,
                 fallbacks: Sequence[ModelRoute] = (), health: ProviderHealth | None = None) -> None:
        self.config = config
        self.provider = provider
        self.limiter = limiter
        self.hooks = hooks or RunHooks()
        self.call_pool = call_pool
        self.stop = stop or StopToken()
        # The job's model first, then its fallback chain.
        self.models = [_Model(ModelRoute(provider, config), primary=True),
                       *(_Model(route, primary=False) for route in fallbacks)]
        self.health = health
        # Batch mode (jobs/worker/provider_batch_poller.py): the job's own model is answered through provider
        # batches instead of _send; the models of its chain are called directly.
        self.batch = batch

    # --- one provider call ------------------------------------------------------------
    def call(self, state: TaskState, prompt: Prompt, params: GenerationParams | None = None) -> Completion:
        """One provider call of a task on the model it is on (retried, rate-limited, billed to the task); `params`:
        this call's own (a short call with another schema, built on `state.model.params`), else the task's, else
        the model's."""
        model = state.model
        # The last line of defence: whatever the planning above did, no request over the context is sent.
        if prompt_tokens_at_most(prompt) + model.max_output > model.context:
            tokens = prompt_tokens(prompt, model.count)
            if tokens + model.max_output > model.context:
                raise ProviderError(model.name, CONTEXT_LENGTH,
                                    f"A request of {tokens} tokens plus {model.max_output} for the answer would "
                                    f"exceed {model.model}'s context of {model.context} tokens")
        params = params or state.params or model.params
        processing = "standard"
        if self.batch is not None and model.primary:
            # Batch mode: answered from the job's provider batches, or registered for the next one (the
            # task stops here: AwaitingBatch). None: the batch could not answer it and the job's fallback is
            # standard: it is sent now, like any standard call.
            answer = self.batch.answer(state.name, prompt, params)
            if answer is not None:
                return self._billed(state, answer.completion, tries=1, processing="batch", at=answer.priced_at)
        elif model.flex:
            processing = "flex"
            params = dataclasses.replace(params, service_tier="flex", timeout=model.config.flex_timeout)

        def attempt(params: GenerationParams = params) -> Completion:
            state.stop.check()  # a stopped run starts no request
            admission = self._admit(state, model)
            lease = None
            if self.limiter is not None:
                lease = self.limiter.acquire(model.name, deadline=state.deadline_now(), sleep=state.stop.sleep)
            try:
                # Reported only once the request is about to go out (after any wait for a rate-limit
                # slot): a worker killed while waiting has no call in flight to count as lost.
                if self.hooks.on_call:
                    self.hooks.on_call(state.name)
                future = self._send(model, prompt, lease, params, admission)
            except BaseException:
                if self.limiter is not None:
                    self.limiter.release(model.name, lease)
                raise
            # A stop abandons the request: its pool thread returns when the SDK does (its request timeout
            # bounds that) and releases the lease then. So does the end of the model's time slice.
            try:
                return state.stop.result(future, timeout=state.wait_limit())
            except ProviderError as error:
                if error.status is not None and self.hooks.on_call_refused:
                    self.hooks.on_call_refused(state.name)
                raise
            except Stopped:
                state.abandoned_call()
                raise
            except TimeoutError:
                state.abandoned_call()
                raise ProviderError(model.name, TIMEOUT, f"{model.label} did not answer within its time slice "
                                    f"({model.config.fallback_after:g} s, FALLBACK_AFTER_SECONDS)") from None

        def note(_attempt: int, error: ProviderError | None) -> None:
            if error:
                state.note_error(error.message, error.kind)
                state.failed_try()

        # Flex capacity refusals (429) are retried with backoff for half the task's budget, so that a standard
        # fallback still has time for its own retries.
        deadline: Callable[[], float] = state.deadline_now
        if processing == "flex" and model.config.fallback == "standard":
            flex_end = time.monotonic() + model.config.policy.max_total / 2

            def deadline() -> float:
                return min(state.deadline_now(), flex_end)
        try:
            result = call_with_retries(attempt, policy=model.config.policy, deadline=deadline,
                                       sleep=self._backoff(state, model), on_try=note)
        except CallFailed as failed:
            with state.lock:
                state.tries += failed.tries
            if not (processing == "flex" and failed.error.kind == RATE_LIMIT):
                raise
            if model.config.fallback != "standard":
                raise CallFailed(ProviderError(model.name, failed.error.kind,
                                               f"Flex capacity unavailable, and the job's fallback is fail: "
                                               f"{failed.message}"), tries=0, elapsed=failed.elapsed,
                                 gave_up=False) from failed
            # The flex tier refused for good: the job's fallback sends it standard, at the standard price.
            logger.info("flex refused for task %s; sending it standard (fallback)", state.name)
            processing = "standard"
            try:
                result = call_with_retries(lambda: attempt(dataclasses.replace(params, service_tier=None,
                                                                               timeout=None)),
                                           policy=model.config.policy, deadline=state.deadline_now,
                                           sleep=state.stop.sleep, on_try=note)
            except CallFailed as again:
                with state.lock:
                    state.tries += again.tries
                raise
        return self._billed(state, result.completion, tries=result.tries, processing=processing)

    def _admit(self, state: TaskState, model: _Model) -> Admission:
        """Whether the model's circuit lets a request through; with a later model to go to, an open circuit
        moves the task on at once; on its last model, the task waits for the circuit's probe."""
        if self.health is None:
            return ALLOWED
        while True:
            admission = self.health.admit(model.name, model.model)
            if admission.allowed:
                return admission
            why = (f"{model.label} is not sent requests for now: its circuit is open after repeated failures "
                   f"({admission.last_kind or 'unknown'})")
            if not state.last:
                raise ProviderError(model.name, CIRCUIT_OPEN, why, sent=False)
            if time.monotonic() + admission.retry_in >= state.deadline:
                # Given up as the failures that opened the circuit would have been (their kind, waited out until
                # the task's budget), saying why no request went out.
                raise ProviderError(model.name, admission.last_kind or SERVER,
                                    f"{why}; its next probe is due after the task's time budget ends", sent=False,
                                    retry_after=admission.retry_in)
            state.note_error(why)
            # Waiting for the probe is no try: whoever asks first when it is due sends it. Asked again at least every
            # PROBE_POLL_S, so that a probe's success (the circuit closed) is seen soon by every task waiting.
            state.stop.sleep(min(admission.retry_in, PROBE_POLL_S))

    def _backoff(self, state: TaskState, model: _Model) -> Callable[[float], None]:
        """The wait before a retry: cut short (ProviderError circuit_open) once the model's circuit is open and the
        task has a later model to go to, so that tasks which failed before it opened move on with the others."""
        if self.health is None or state.last:
            return state.stop.sleep
        health = self.health

        def backoff(seconds: float) -> None:
            end = time.monotonic() + seconds
            while True:
                if health.is_open(model.name, model.model):
                    raise ProviderError(model.name, CIRCUIT_OPEN, f"{model.label} is not sent requests for now: its "
                                        f"circuit opened after repeated failures ({state.last_kind}; last: "
                                        f"{state.last_error})", sent=False)
                left = end - time.monotonic()
                if left <= 0:
                    return
                state.stop.sleep(min(left, BACKOFF_POLL_S))

        return backoff

    def _billed(self, state: TaskState, completion: Completion, *, tries: int, processing: str,
                at: dt.datetime | None = None) -> Completion:
        """Count and bill one answered call (at its model's price, in its mode, in force at `at`, else at the task's
        start)."""
        model = state.model
        cost = cost_of(model.info, completion.usage, at=at or state.priced_at, processing=processing)
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
            raise ProviderError(model.name, BLOCKED,
                                f"{model.provider.label} blocked the answer ({completion.finish_reason or 'no reason given'})")
        return completion

    def _send(self, model: _Model, prompt: Prompt, lease: str | None, params: GenerationParams,
              admission: Admission) -> Future[Completion]:
        def send() -> Completion:
            try:
                completion = model.provider.complete(model=model.model, prompt=prompt, params=params)
            except ProviderError as error:
                self._report(model, error, admission, flex=params.service_tier is not None)
                raise
            finally:
                if self.limiter is not None:
                    self.limiter.release(model.name, lease)
            self._report(model, None, admission)
            return completion

        assert self.call_pool is not None, "Runner.run() provides a pool"
        return self.call_pool.submit(send)

    def _report(self, model: _Model, error: ProviderError | None, admission: Admission, *, flex: bool = False) -> None:
        """A request's outcome to the provider health (every request's, an abandoned one's too, when it returns)."""
        if self.health is None:
            return
        if error is None:
            if admission.clean and not admission.probe:
                return  # nothing on record to clear
        elif error.kind not in HEALTH_FAILURE_KINDS or (flex and error.kind == RATE_LIMIT):
            return  # this request's own problem, or the flex tier's capacity: says nothing of the model
        state = self.health.record(model.name, model.model, error=error, probe=admission.probe)
        if state == "opened":
            logger.warning("circuit opened for %s after repeated failures (last: %s): no request goes to it until its "
                           "cooldown has passed", model.label, error.message if error else "")
        if error is not None and error.kind in (AUTH, PERMISSION) and self.health.alert_once(model.name, error.kind):
            logger.error("%s: %s. Every request to %s fails until this is fixed: tasks with a fallback chain move to "
                         "their next model, the others fail.", model.provider.label, error.message, model.provider.label)

    def gather(self, state: TaskState, calls: list[Callable[[], str]]) -> list[str]:
        """Run `calls` (each one provider call, waits included) side by side, at most chunk_concurrency
        at a time, on threads of this task: the requests themselves go to the call pool. The first failure
        ends the others' waits (their requests are abandoned): the task is failing on this model."""
        if len(calls) == 1:
            return [calls[0]()]
        with ThreadPoolExecutor(max_workers=max(1, min(self.config.chunk_concurrency, len(calls)))) as pool:
            futures = [pool.submit(call) for call in calls]
            gate: Future[Future] = Future()
            lock = threading.Lock()
            left = [len(futures)]

            def settle(future: Future) -> None:
                # A failure opens the gate at once; a call that stopped (a batch round: every call of the level
                # registers for the next batch) waits for the others.
                error = future.exception()
                with lock:
                    left[0] -= 1
                    if not gate.done() and ((error is not None and not isinstance(error, Stopped)) or not left[0]):
                        gate.set_result(future)

            for future in futures:
                future.add_done_callback(settle)
            try:
                first = state.stop.result(gate)
                if first.exception() is not None:
                    raise first.exception()
                # Every call ended; one that stopped stops the task's round (in order, as the calls were given).
                return [future.result() for future in futures]
            except Stopped:
                raise
            except BaseException:
                state.stop.stop("a call of the task failed")
                raise

    # --- one task -----------------------------------------------------------------------
    def run_task(self, spec: TaskSpec, transcript: str) -> TaskOutcome:
        return self.task_outcome(spec.name, lambda state: self._answer(state, spec, transcript))

    def task_outcome(self, name: str, work: Callable[[TaskState], str]) -> TaskOutcome:
        """The outcome of one task whose calls `work(state)` makes on `state.model`: run on the job's model, then
        on each model of the chain it moves to (work is called again on each, from the start); its answer from
        what `work` returns, its failure from what it raised on the last model, and its usage, cost, tries and
        chunks from `state`."""
        started = time.monotonic()
        # One deadline for the whole task (all its calls, retries and waits, on every model): PROVIDER_RETRY_MAX_TOTAL.
        state = TaskState(name, deadline=started + self.config.policy.max_total, stop=self.stop)
        outcome = TaskOutcome(name=name)
        failures: list[tuple[_Model, str, str]] = []  # each model that failed the task: (model, kind, message)
        index: int | None = 0
        while index is not None:
            model = self.models[index]
            state.enter(model, last=index == len(self.models) - 1)
            try:
                outcome.text = work(state)
                outcome.chunks = state.chunks
                failures.clear()
                break
            except CallFailed as failed:
                kind, message = failed.error.kind, failed.message
            except Stopped:
                raise
            except ProviderError as error:
                kind, message = error.kind, error.message
            except structured.AnswerError as error:
                kind, message = "invalid_answer", str(error)
            except Exception as exc:  # a bug or an SDK surprise: fail this task, keep the others
                logger.exception("task %s failed unexpectedly", name)
                kind, message = "internal", f"Internal error: {type(exc).__name__}"
            finally:
                state.leave()
            failures.append((model, kind, message))
            # No model is started after the task's deadline: a task still ends within its budget plus one request.
            index = self._next_model(index, kind) if time.monotonic() < state.deadline else None
            if index is not None:
                outcome.fallback_from.append({"provider": model.name, "model": model.model, "reason": kind,
                                              "message": message})
                logger.info("task %s moves from %s to %s (%s)", name, model.label, self.models[index].label,
                            kind)
        if failures:
            _, outcome.error_kind, outcome.error = failures[-1]
            if len(failures) > 1:
                outcome.error = "Every model of the fallback chain failed: " + "; ".join(
                    f"{model.label}: {message}" for model, _, message in failures)
            outcome.blocked = outcome.error_kind == BLOCKED
        outcome.provider, outcome.model = state.model.name, state.model.model
        outcome.usage, outcome.cost = state.usage, state.cost
        outcome.tries, outcome.calls = state.tries, state.calls
        outcome.abandoned_calls = state.abandoned
        outcome.last_error = state.last_error
        outcome.priced_at = state.priced_at
        outcome.truncated = state.truncated
        outcome.finish_reason = state.finish_reasons[-1] if state.finish_reasons else ""
        outcome.latency_s = time.monotonic() - started
        return outcome

    def _next_model(self, index: int, kind: str) -> int | None:
        """The model of the chain a task failing with `kind` on model `index` moves to (None: it fails)."""
        if kind not in FALLBACK_KINDS:
            return None
        current = self.models[index]
        for later in range(index + 1, len(self.models)):
            # A request too long for this model goes only to a model that can read more.
            if kind == CONTEXT_LENGTH and self.models[later].context <= current.context:
                continue
            return later
        return None

    def _answer(self, state: TaskState, spec: TaskSpec, transcript: str) -> str:
        """The task answered on the state's model: its stored output (its chunks on `state`). Raises what made
        it fail."""
        model = state.model
        # A task with a schema, citations or a language (analysis/engine/structured.py): its own instruction,
        # transcript (turn numbers) and output format; a plain prompt is sent as it is.
        request = structured.decode_task(spec.prompt)
        stored_transcript = transcript  # turn N is its line N, whatever the prompt shows
        if not request.plain:
            spec = TaskSpec(name=spec.name, prompt=structured.instruction(request))
            # Through this model's provider's own structured-output field (GenerationParams.schema).
            state.params = structured.params_for(request, name=spec.name, params=model.params)
            if request.cites:
                transcript = structured.transcript_for(request, transcript)
        budget = prompt_budget(model.config, spec, model.count)
        if budget <= 0:
            raise ProviderError(model.name, CONTEXT_LENGTH,
                                f"The task prompt and output limit leave no room for the transcript in "
                                f"{model.model}'s context of {model.context} tokens")
        if model.document_fits(transcript, budget):
            prompt = prompts.task_prompt(system_prompt=model.config.system_prompt, transcript=transcript,
                                         instruction=spec.prompt)
            text = self.call(state, prompt).text
        else:
            text, state.chunks = self._map_reduce(state, spec, transcript, budget)
        if request.structured:
            text = self._checked(state, request, text, stored_transcript)
        return text

    def _checked(self, state: TaskState, request: structured.TaskRequest, text: str, transcript: str) -> str:
        """A structured answer validated (one repair call if it fails) and its citations checked."""
        system = state.model.config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT

        def repair(answer: str, problem: str) -> str:
            return self.call(state, structured.repair_prompt(system=system, request=request, answer=answer,
                                                              problem=problem)).text

        return structured.finish(text, request, transcript=transcript, repair=repair)

    def _map_reduce(self, state: TaskState, spec: TaskSpec, transcript: str, budget: int) -> tuple[str, int]:
        """Map: every chunk answered at once. Reduce: the partial answers merged, level by level while
        they do not fit one request. Returns (answer, number of chunks)."""
        model = state.model
        system = model.config.system_prompt
        chunks = split_transcript(transcript, max_tokens=budget, count=model.count,
                                  overlap_tokens=min(model.config.overlap_tokens, budget // 10))
        if len(chunks) == 1:
            # Only the <transcript> wrapper, counted twice in the plan, tipped it over: its text fits.
            return self.call(state, prompts.task_prompt(system_prompt=system, transcript=chunks[0],
                                                         instruction=spec.prompt)).text, 1
        partials = self.gather(state, [
            (lambda part=part, chunk=chunk: self.call(state, prompts.map_prompt(
                system_prompt=system, chunk=chunk, instruction=spec.prompt, part=part, parts=len(chunks))).text)
            for part, chunk in enumerate(chunks, 1)
        ])
        room = reduce_budget(model.config, spec, model.count)
        while True:
            groups = group_partials(partials, max_tokens=room, count=model.count)
            if len(groups) == 1:
                return self.call(state, prompts.reduce_prompt(system_prompt=system, partials=groups[0],
                                                               instruction=spec.prompt)).text, len(chunks)
            if len(groups) >= len(partials):
                # No two answers fit one request together: another level would not shrink them.
                raise ProviderError(model.name, CONTEXT_LENGTH,
                                    f"The partial answers are too long to merge within {model.model}'s "
                                    f"context of {model.context} tokens; set a lower max_output_tokens")
            partials = self.gather(state, [
                (lambda group=group: self.call(state, prompts.reduce_prompt(
                    system_prompt=system, partials=group, instruction=spec.prompt)).text)
                for group in groups
            ])

    # --- all tasks ----------------------------------------------------------------------
    def run(self, transcript: str, tasks: list[TaskSpec]) -> list[TaskOutcome]:
        """One outcome per task, in order. A task the stop token abandoned (or never started) comes
        back `skipped`, without on_done: the caller stores nothing for it."""
        if not tasks:
            return []
        with self.pool(len(tasks)):
            return self.run_specs(tasks, lambda spec: self.run_task(spec, transcript))

    @contextmanager
    def pool(self, tasks: int) -> Iterator[CallPool]:
        """The run's call pool: the caller's (the worker's one pool, shared by all its jobs), else, for a lone
        run (analyze_transcript_task, a forked work horse), one of its own as wide as the calls it can have in
        flight at once, shut down when the run ends."""
        if self.call_pool is not None:
            yield self.call_pool
            return
        size = min(self.config.concurrency, tasks) * self.config.chunk_concurrency
        self.call_pool = CallPool(max(1, min(size, 64)), name="run-call")
        try:
            yield self.call_pool
        finally:
            self.call_pool.shutdown(wait=False)
            self.call_pool = None

    def run_specs(self, tasks: list[TaskSpec], run_one: Callable[[TaskSpec], TaskOutcome]) -> list[TaskOutcome]:
        """`run_one` for every task, side by side (TASK_CONCURRENCY), with the run's hooks around each: a task
        the caller refuses or a stopped run abandons comes back `skipped`, without on_done."""

        def one(spec: TaskSpec) -> TaskOutcome:
            try:
                if self.stop.stopped or (self.hooks.should_start and not self.hooks.should_start(spec.name)):
                    outcome = TaskOutcome(name=spec.name, skipped=True, chunks=0)
                else:
                    outcome = run_one(spec)
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
