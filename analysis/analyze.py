"""The analysis as the rest of the service calls it: a run's configuration from settings, the run itself,
and the worker's preload. No database, no queue.

The one-shot function, pure (no job, no database):

    analyze_transcript_task(transcript, provider, model, system_prompt, tasks)

returns {"results": {name: text}, "errors": {name: message}, "metadata": {...}}, with results in submitted
order. The job worker (jobs/worker/runs.py) runs the same Runner through run_analysis, with callbacks that save
each task's outcome as it completes.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from redis import Redis

from analysis.clients import endpoints, get_provider, preload_sdks
from analysis.engine.ask import AskScope, estimate_ask, run_ask
from analysis.engine.catalogue import (
    effective_context, get_model, load_catalogue, parse_context_overrides, resolve_model,
)
from analysis.engine.estimate import Estimate, estimate_run
from analysis.engine.execution import CallPool, StopToken
from analysis.engine.fallbacks import chain_processing
from analysis.engine.health import CircuitPolicy, ProviderHealth, RedisProviderHealth
from analysis.engine.limits import ProviderLimiter
from analysis.engine.model_info import ModelInfo
from analysis.engine.planning import RunConfig, TaskSpec
from analysis.engine.pricing import COST_QUANTUM, price_unknown_note
from analysis.engine.provider_batch_calls import BatchCalls
from analysis.engine.providers.base import ProviderError
from analysis.engine.providers.usage import Usage
from analysis.engine.retry import RetryPolicy
from analysis.engine.runner import ModelRoute, RunHooks, Runner, TaskOutcome
from analysis.engine.structured import decode_task
from analysis.engine.tokens import preload_encodings

logger = logging.getLogger(__name__)


def preload_provider_modules() -> None:
    """Import the three SDKs and load the token encodings and the catalogue now, once, at a worker's start.

    They take seconds to load; a worker that did not would pay that on its first job, and a forking worker
    on every job (its horses inherit what the parent loaded).
    """
    preload_encodings()
    load_catalogue()
    preload_sdks()


def retry_policy_from_settings() -> RetryPolicy:
    return RetryPolicy(
        max_tries=settings.PROVIDER_MAX_TRIES,
        base_delay=settings.PROVIDER_RETRY_BASE_DELAY,
        max_delay=settings.PROVIDER_RETRY_MAX_DELAY,
        max_total=settings.PROVIDER_RETRY_MAX_TOTAL,
    )


def context_overrides() -> dict[str, int]:
    return parse_context_overrides(settings.MODEL_CONTEXT_OVERRIDES_RAW)


def run_config(*, provider: str, model: str | ModelInfo, system_prompt: str = "", max_output_tokens: int | None = None,
               temperature: float | None = None, processing: str = "standard", fallback: str = "standard") -> RunConfig:
    """The RunConfig for one job from settings; `model` by name, or already resolved (the API's serializer)."""
    overrides = context_overrides()
    if isinstance(model, ModelInfo):
        info = model
    else:
        info = resolve_model(provider, model, allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                             context_overrides=overrides, endpoints=endpoints())
    return RunConfig(
        provider=provider,
        model=info,
        system_prompt=system_prompt or "",
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        context_limit=effective_context(info, max_prompt_tokens=settings.MAX_PROMPT_TOKENS, overrides=overrides),
        concurrency=settings.TASK_CONCURRENCY,
        chunk_concurrency=settings.CHUNK_CONCURRENCY,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        default_max_output_tokens=settings.DEFAULT_MAX_OUTPUT_TOKENS,
        policy=retry_policy_from_settings(),
        processing=processing,
        fallback=fallback,
        flex_timeout=settings.FLEX_REQUEST_TIMEOUT,
        fallback_after=settings.FALLBACK_AFTER_SECONDS,
    )


def stored_model(provider: str, model: str) -> ModelInfo:
    """The model a job runs and is billed with: the exact id its submission resolved and stored, looked up as it
    stands. Trusted, not checked again: a model the API accepted as unlisted (ALLOW_UNLISTED_MODELS) runs whatever
    this process's setting says. Fails (UnknownModelError) only for a model retired since, or an endpoint no longer
    configured."""
    return resolve_model(provider, model, allow_unlisted=True, context_overrides=context_overrides(),
                         endpoints=endpoints())


def price_known(provider: str, model: str) -> bool:
    """Whether a job's model has a real price here (catalogue, or an endpoint with prices)."""
    endpoint = endpoints().get(provider)
    if endpoint is not None:
        return endpoint.price_known(model)
    try:
        return get_model(provider, model) is not None
    except ValueError:
        return False


def run_analysis(*, transcript: str, config: RunConfig, tasks: list[TaskSpec], limiter: ProviderLimiter | None = None,
                 hooks: RunHooks | None = None, call_pool: CallPool | None = None,
                 stop: StopToken | None = None, batch: BatchCalls | None = None,
                 fallbacks: list[ModelRoute] | None = None, health: ProviderHealth | None = None) -> list[TaskOutcome]:
    runner = Runner(config, get_provider(config.provider), limiter=limiter, hooks=hooks, call_pool=call_pool,
                    stop=stop, batch=batch, fallbacks=fallbacks or (), health=health)
    return runner.run(transcript, tasks)


def ask_question(*, scope: AskScope, config: RunConfig, spec: TaskSpec, limiter: ProviderLimiter | None = None,
                 hooks: RunHooks | None = None, call_pool: CallPool | None = None,
                 stop: StopToken | None = None, fallbacks: list[ModelRoute] | None = None,
                 health: ProviderHealth | None = None) -> list[TaskOutcome]:
    """An ask job's one task (analysis/engine/ask.py): the question in `spec`, the meetings from `scope`, on the
    job's model and then its fallback chain, as a job's tasks run."""
    runner = Runner(config, get_provider(config.provider), limiter=limiter, hooks=hooks, call_pool=call_pool,
                    stop=stop, fallbacks=fallbacks or (), health=health)
    return run_ask(runner, spec, scope)


def estimate_ask_job(*, scope: AskScope, provider: str, model: ModelInfo | str, system_prompt: str,
                     question: TaskSpec, max_output_tokens: int | None) -> Estimate:
    """Plan and price an ask job's task as it will run (analysis/engine/ask.py: estimate_ask)."""
    config = run_config(provider=provider, model=model, system_prompt=system_prompt or "",
                        max_output_tokens=max_output_tokens)
    return estimate_ask(config=config, request=decode_task(question.prompt), scope=scope)


# --- fallback chains and provider health ----------------------------------------------------------

def chain_configs(*, chain: list[dict], config: RunConfig) -> list[RunConfig]:
    """The run configuration of each model of a job's chain, after the job's own (`config`): the same prompts
    and limits, each model's own context and prices, in the mode chain_processing gives it. A model that can no
    longer run here (retired, its endpoint or key removed since the job was accepted) is left out, and said."""
    configs = []
    for entry in chain:
        provider, model = entry["provider"], entry["model"]
        try:
            info = stored_model(provider, model)
        except ValueError as exc:  # UnknownModelError, UnknownProviderError
            logger.warning("fallback model %s %s left out of the chain: %s", provider, model, exc)
            continue
        processing = chain_processing(processing=config.processing, fallback=config.fallback, provider=provider,
                                      info=info)
        if processing is None:
            logger.warning("fallback model %s %s left out of the chain: no %s price, and the job's fallback is %s",
                           provider, model, config.processing, config.fallback)
            continue
        configs.append(run_config(provider=provider, model=info, system_prompt=config.system_prompt,
                                  max_output_tokens=config.max_output_tokens, temperature=config.temperature,
                                  processing=processing, fallback=config.fallback))
    return configs


def fallback_routes(*, chain: list[dict], config: RunConfig) -> list[ModelRoute]:
    """The chain as the Runner takes it: each model's configuration with its provider's client."""
    routes = []
    for chained in chain_configs(chain=chain, config=config):
        try:
            routes.append(ModelRoute(get_provider(chained.provider), chained))
        except ProviderError as exc:  # its key removed since the job was accepted
            logger.warning("fallback model %s %s left out of the chain: %s", chained.provider, chained.model.name,
                           exc.message)
    return routes


def circuit_policy() -> CircuitPolicy:
    return CircuitPolicy(failure_threshold=settings.CIRCUIT_FAILURE_THRESHOLD,
                         cooldown=settings.CIRCUIT_COOLDOWN_SECONDS, max_cooldown=settings.CIRCUIT_COOLDOWN_MAX_SECONDS)


def provider_health(connection: Redis) -> RedisProviderHealth:
    """The provider health store (analysis/engine/health.py) on `connection`, with this server's circuit settings."""
    return RedisProviderHealth(connection, circuit_policy())


def result_document(*, config: RunConfig, outcomes: list[TaskOutcome]) -> dict:
    metadata = run_metadata(provider=config.provider, model=config.model, outcomes=outcomes)
    return {
        "results": {o.name: o.text for o in outcomes if o.ok},
        "errors": {o.name: o.error for o in outcomes if o.error},
        "metadata": _json_numbers(metadata),
    }


def _json_numbers(value):
    # Money is Decimal inside; callers of the pure functions get plain JSON numbers.
    if isinstance(value, Decimal):
        return float(value.quantize(COST_QUANTUM))
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_numbers(v) for v in value]
    return value


def analyze_transcript_task(transcript: str, provider: str, model: str, system_prompt: str | None,
                            tasks: dict[str, str], *, limiter: ProviderLimiter | None = None) -> dict:
    config = run_config(provider=provider, model=model, system_prompt=system_prompt or "")
    specs = [TaskSpec(name=name, prompt=prompt) for name, prompt in tasks.items()]
    return result_document(config=config, outcomes=run_analysis(transcript=transcript, config=config, tasks=specs,
                                                                limiter=limiter))


def run_metadata(*, provider: str, model: ModelInfo, outcomes: list[TaskOutcome]) -> dict:
    total_usage = Usage()
    total_cost = Decimal("0")
    for outcome in outcomes:
        total_usage = total_usage + outcome.usage
        total_cost += outcome.cost
    metadata = {
        "provider": provider,
        "model": model.name,
        "total_cost": total_cost,
        "usage": total_usage.as_dict(),
        "tasks": {o.name: o.metadata() for o in outcomes if not o.skipped},
    }
    if not model.listed:
        metadata["price_unknown"] = True
        metadata["note"] = price_unknown_note(provider, model.name)
    return metadata


def estimate_job(
    *,
    transcript: str,
    provider: str,
    model: ModelInfo | str,
    system_prompt: str,
    tasks: list[TaskSpec],
    max_output_tokens: int | None,
    transcript_tokens: int | None = None,
    processing: str = "standard",
    fallback: str = "standard",
    fallback_models: list[dict] | None = None,
) -> Estimate:
    """Plan and price a job's calls. `model` by name (resolved with the settings) or a resolved ModelInfo;
    `transcript_tokens`: the transcript document's tokens if the caller counted them already. `fallback_models`: the
    job's chain, each of its models priced too (Estimate.fallbacks).

    Raises UnknownModelError / UnknownProviderError for a model or provider that cannot run.
    """
    config = run_config(provider=provider, model=model, system_prompt=system_prompt or "",
                        max_output_tokens=max_output_tokens, processing=processing, fallback=fallback)
    estimate = estimate_run(config=config, transcript=transcript, tasks=tasks, transcript_tokens=transcript_tokens)
    # Each model of the chain prices the whole job alone, counted with its own tokenizer and planned for its window.
    estimate.fallbacks = [estimate_run(config=chained, transcript=transcript, tasks=tasks)
                          for chained in chain_configs(chain=fallback_models or [], config=config)]
    return estimate
