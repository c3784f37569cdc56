"""A submission, from checked input to a queued job: the one path of analyze, batch, estimate and the CLI.

The input serializers (jobs/serializers.py) check each field on its own (its shape, a provider's name and
key, a callback URL). Everything else happens here, once each: the saved profile, the model (resolved
once; the ModelInfo goes on to the estimate and the resolved id into the job row), the transcript (read
from whichever shape it came in by transcripts/inputs.py, or a stored one's by `transcript_id`; its tokens
counted at most once, and only when a check needs them), the spending checks, and the job, once per
Idempotency-Key. A question across meetings (job_ask) goes the same way, its scope read instead of a transcript.

Errors are ServiceErrors; a bad field's names the field, in the same words DRF would use.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import monthly_budget_of, spend_check
from analysis.analyze import context_overrides, estimate_ask_job, estimate_job
from analysis.clients import endpoints, provider_error, provider_names
from analysis.engine import structured as structured_tasks
from analysis.engine.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.engine.estimate import Estimate
from analysis.engine.model_info import ModelInfo
from analysis.engine.planning import TaskSpec
from analysis.engine.processing import mode_refusal
from analysis.engine.prompts import transcript_document
from analysis.engine.tokens import count_tokens, token_upper_bound
from analysis.selectors import profile_lookup
from analysis.services import fallback_chain_check, structured_refusal
from jobs.models import Job
from jobs.services import NO_SUCH_TRANSCRIPT, JobRequest, digest, job_create
from jobs.webhooks import CallbackUrlError, validate_callback_url
from scriptripper.errors import Conflict, PayloadTooLarge, field_errors, validation_error
from transcripts.inputs import TRANSCRIPT_REQUIRED, read_transcript
from transcripts.retrieval import transcript_scope
from transcripts.selectors import transcript_for_user, transcripts_list, transcripts_visible_to

TASKS_OR_PROFILE = "Send either `tasks` ({name: prompt}) or `profile` (a profile's name or id)"


def job_analyze(*, owner: User, idempotency_key: str = "", **fields: Any) -> tuple[Job, bool]:
    """POST jobs/analyze and `manage.py analyze`: (job, created); created is False for an
    Idempotency-Key seen before with the same body. `fields`: AnalyzeSerializer's validated data."""
    request = job_request_build(owner=owner, kind=Job.Kind.ANALYZE, **fields)
    return job_submit(owner=owner, request=request, idempotency_key=idempotency_key)


def job_batch(*, owner: User, **fields: Any) -> Job:
    """POST jobs/batch: the contract's batch shape (tasks as a list), run on the `low` queue (route_queue)."""
    job, _ = job_submit(owner=owner, request=job_request_build(owner=owner, kind=Job.Kind.BATCH, **fields))
    return job


def job_estimate(*, owner: User, **fields: Any) -> Estimate:
    """POST jobs/estimate: the same input and checks as analyze, so it answers for exactly what analyze would run."""
    return request_estimate(job_request_build(owner=owner, kind=Job.Kind.ANALYZE, **fields))


def job_ask(*, owner: User, idempotency_key: str = "", **fields: Any) -> tuple[Job, bool]:
    """POST /api/v1/ask and `manage.py ask`: a question across meetings, as a job of kind ask; (job, created) as
    job_analyze. `fields`: AskSerializer's validated data."""
    return job_submit(owner=owner, request=ask_request_build(owner=owner, **fields), idempotency_key=idempotency_key)


def ask_request_build(*, owner: User, question: str, provider: str | None = None, model: str | None = None,
                      scope: dict | None = None,
                      system_prompt: str | None = None, max_output_tokens: int | None = None,
                      temperature: float | None = None, max_cost: Decimal | None = None,
                      language: str | None = None, callback_url: str = "") -> JobRequest:
    """The JobRequest of a question across meetings, everything checked: its one task `answer` (the question as a
    cited task across meetings, analysis/engine/ask.py), and its scope resolved to the owner's transcripts."""
    errors: dict[str, list[str]] = {}
    callback_url = _callback_url(callback_url, errors)
    provider, model = _provider_model(provider, model, errors)
    if errors:
        raise field_errors(errors)
    info = _model_info(provider, model)
    request = structured_tasks.TaskRequest(prompt=question, cite=True, language=language or "", across=True)
    return JobRequest(
        provider=provider,
        model=info.name,
        transcript="",
        transcript_format="",
        system_prompt=system_prompt or "",
        tasks=[TaskSpec(name=Job.ASK_TASK, prompt=structured_tasks.encode_task(request))],
        kind=Job.Kind.ASK,
        params=generation_params(max_output_tokens=max_output_tokens, temperature=temperature),
        max_cost=max_cost,
        # Its answer depends on the scope's transcripts as they are when it runs: never reused.
        reuse_results=False,
        callback_url=callback_url,
        language=language or "",
        # Standard requests only: a batch round would search again on each delivery.
        processing="standard",
        model_info=info,
        scope=None if scope is None else {key: [str(i) for i in value] if key == "transcripts" else
                                          value.isoformat() if hasattr(value, "isoformat") else value
                                          for key, value in scope.items()},
        scope_read=transcript_scope(owner=owner, transcript_ids=ask_scope_transcripts(owner=owner, scope=scope)),
    )


def ask_scope_transcripts(*, owner: User, scope: dict | None) -> list[uuid.UUID]:
    """The owner's transcripts an ask is over: those named, those the filters select, or (no scope) all of them.
    A scope that names another user's transcript, or selects none, is a 400 on `scope`."""
    if scope is not None and "transcripts" in scope:
        named = list(dict.fromkeys(scope["transcripts"]))
        found = set(transcripts_visible_to(owner).filter(id__in=named).values_list("id", flat=True))
        missing = [str(i) for i in named if i not in found]
        if missing:  # not theirs, deleted, or never was: the same answer
            raise field_errors({"scope": [f"No such transcript: {', '.join(missing[:5])}"
                                          f"{' …' if len(missing) > 5 else ''}. Name transcripts of yours "
                                          "(GET /api/v1/transcripts)."]})
        return named
    ids = list(transcripts_list(user=owner, filters=scope or {}).order_by().values_list("id", flat=True))
    if not ids:
        raise field_errors({"scope": ["No transcript of yours matches this scope: nothing to ask over."
                                      if scope else "You have no transcripts to ask over yet (POST /api/v1/transcripts)."]})
    return ids


def generation_params(*, max_output_tokens: int | None, temperature: float | None) -> dict:
    """The generation parameters a job was given (Job.params): those sent, no others."""
    return {key: value for key, value in (("max_output_tokens", max_output_tokens), ("temperature", temperature))
            if value is not None}


def _callback_url(callback_url: str, errors: dict[str, list[str]]) -> str:
    """The callback URL checked (errors noted under `callback_url`), or "" for none."""
    if not callback_url.strip():
        return ""
    try:
        return validate_callback_url(callback_url)
    except CallbackUrlError as exc:
        errors["callback_url"] = [str(exc)]
        return callback_url


def _provider_model(provider: str | None, model: str | None, errors: dict[str, list[str]]) -> tuple[str, str]:
    """Provider and model as sent, trimmed; each one missing noted in `errors`."""
    provider, model = (provider or "").strip(), (model or "").strip()
    if not provider:
        errors["provider"] = [f"A provider is required: one of {', '.join(provider_names())}."]
    if not model:
        errors["model"] = ["A model is required."]
    return provider, model


def _model_info(provider: str, model: str) -> ModelInfo:
    """The model a job runs (an id or a listed alias, resolved once); a field error on `model` otherwise."""
    try:
        return resolve_model(provider, model, allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                             context_overrides=context_overrides(), endpoints=endpoints())
    except (UnknownModelError, UnknownProviderError) as exc:
        raise field_errors({"model": [str(exc)]}) from None


def job_request_build(*, owner: User, kind: str, transcript: str | None = None, format: str | None = None,
                      segments: list | None = None, file: File | None = None,
                      transcript_id: uuid.UUID | None = None, provider: str | None = None,
                      model: str | None = None, system_prompt: str | None = None,
                      tasks: list[tuple[str, str]] | None = None, profile: str | None = None,
                      structured: bool = True, max_output_tokens: int | None = None,
                      temperature: float | None = None, max_cost: Decimal | None = None, reuse: bool = True,
                      language: str | None = None, callback_url: str = "", processing: str | None = None,
                      fallback: str | None = None, fallback_models: list[dict] | None = None) -> JobRequest:
    """The JobRequest of a submission, everything checked. None: the field was not sent (a profile, or for
    `fallback_models` the server's MODEL_FALLBACKS, may fill it)."""
    errors: dict[str, list[str]] = {}  # what is missing, reported together
    callback_url = _callback_url(callback_url, errors)
    profile_name, provider_from_profile = "", False
    if kind == Job.Kind.ANALYZE:
        ref = (profile or "").strip()
        if (tasks is not None) == bool(ref):
            errors["tasks"] = [f"{TASKS_OR_PROFILE}, not both." if tasks is not None else f"{TASKS_OR_PROFILE}."]
        elif ref:
            found = profile_lookup(user=owner, ref=ref)
            if found is None:
                errors["profile"] = [f"No profile {ref!r}: give the name or id of one of yours or a built-in one "
                                     "(GET /api/v1/profiles)."]
            else:
                tasks, profile_name = found.task_pairs(structured=structured), found.name
                if language is None and found.language:
                    language = found.language
                if processing is None and found.processing:
                    processing = found.processing
                if fallback is None and found.fallback:
                    fallback = found.fallback
                if fallback_models is None and found.fallback_models is not None:
                    fallback_models = found.fallback_models
                # The request's provider, model and system prompt override the profile's defaults. The default
                # model goes with the default provider only: it means nothing to another provider.
                if not provider:
                    provider, provider_from_profile = found.default_provider, True
                    model = model or found.default_model
                elif not model and provider == found.default_provider:
                    model = found.default_model
                if system_prompt is None:
                    system_prompt = found.system_prompt
    if language and tasks:
        # Every task of the job, the reduce step included, answers in it (analysis/engine/structured.py).
        tasks = [(name, structured_tasks.with_language(prompt, language)) for name, prompt in tasks]
    sent = [name for name, value in (("transcript", transcript), ("segments", segments), ("file", file))
            if value is not None]
    if transcript_id is not None and sent:
        errors["transcript_id"] = [f"Send either `transcript_id` or the transcript itself, not both (got "
                                   f"transcript_id and {' and '.join(sent)})."]
    elif transcript_id is None and not sent:
        errors["transcript"] = [f"{TRANSCRIPT_REQUIRED} Or give the `transcript_id` of a stored one."]
    provider, model = _provider_model(provider, model, errors)
    if provider and provider_from_profile and (problem := provider_error(provider)) is not None:
        # The request's own provider was checked (and lower-cased) by the input serializer; a profile's is
        # stored lower-cased and checked here, where the profile is read.
        errors["provider"] = [problem]
    if errors:
        raise field_errors(errors)
    info = _model_info(provider, model)
    # A mode the provider or model does not offer is refused here, never run at a silent standard price.
    if refusal := mode_refusal(provider=provider, info=info, processing=processing or "standard"):
        raise field_errors({"processing": [refusal]})
    if refusal := structured_refusal(info, tasks):
        raise field_errors({"model": [refusal]})
    if fallback_models is None:  # the server's default for the model, by the id or alias it was asked by
        fallback_models = settings.MODEL_FALLBACKS.get(info.name, settings.MODEL_FALLBACKS.get(info.catalogue_id, []))
    chain = fallback_chain_check(fallback_models, provider=provider, info=info, processing=processing or "standard",
                                 fallback=fallback or "standard", tasks=tasks)
    stored = None
    if transcript_id is not None:
        stored = transcript_for_user(user=owner, transcript_id=transcript_id)
        if stored is None:  # not theirs, deleted, or never was: the same answer
            raise field_errors({"transcript_id": [NO_SUCH_TRANSCRIPT]})
        text, transcript_format = stored.text, stored.format
    else:
        text, transcript_format = read_transcript(text=transcript, segments=segments, upload=file, fmt=format)
    return JobRequest(
        provider=provider,
        # The exact id the name resolved to (an id or a listed alias, in the provider's spelling) is what the
        # job stores, sends and is billed for.
        model=info.name,
        transcript=text,
        transcript_format=transcript_format,
        transcript_ref=stored.id if stored is not None else None,
        system_prompt=system_prompt or "",
        tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in tasks],
        kind=kind,
        profile_name=profile_name,
        params=generation_params(max_output_tokens=max_output_tokens, temperature=temperature),
        max_cost=max_cost,
        reuse_results=reuse,
        callback_url=callback_url,
        language=language or "",
        processing=processing,
        fallback=fallback or "standard",
        fallback_models=chain,
        model_info=info,
        transcript_tokens=_transcript_tokens(text, provider=provider, model=info.name),
    )


# --- the transcript's tokens --------------------------------------------------------------------

def _transcript_tokens(text: str, *, provider: str, model: str) -> int | None:
    """The tokens of the transcript as every request carries it (its <transcript> document), held to
    MAX_TRANSCRIPT_TOKENS. Counted only when a bound without encoding cannot clear it; None otherwise."""
    document = transcript_document(text)
    if token_upper_bound(document) <= settings.MAX_TRANSCRIPT_TOKENS:
        return None
    tokens = count_tokens(document, provider=provider, model=model)
    if tokens > settings.MAX_TRANSCRIPT_TOKENS:
        raise PayloadTooLarge(f"The transcript is about {tokens:,} tokens long for {model}; the limit is "
                              f"{settings.MAX_TRANSCRIPT_TOKENS:,} tokens (MAX_TRANSCRIPT_TOKENS).")
    return tokens


# --- spending -------------------------------------------------------------------------------------

def request_estimate(request: JobRequest) -> Estimate:
    """The estimate of a checked request, from the model it resolved to and the tokens already counted (an ask:
    from its scope as read at submit)."""
    if request.scope_read is not None:
        return estimate_ask_job(scope=request.scope_read, provider=request.provider,
                                model=request.model_info or request.model, system_prompt=request.system_prompt,
                                question=request.tasks[0], max_output_tokens=request.params.get("max_output_tokens"))
    return estimate_job(transcript=request.transcript, provider=request.provider,
                        model=request.model_info or request.model, system_prompt=request.system_prompt,
                        tasks=request.tasks, max_output_tokens=request.params.get("max_output_tokens"),
                        transcript_tokens=request.transcript_tokens, processing=request.processing or "standard",
                        fallback=request.fallback, fallback_models=request.fallback_models)


def job_check_spending(*, owner: User, requests: list[JobRequest]) -> None:
    """Refuse a submission before anything is created when it could cost more than allowed.

    - a job's own `max_cost` below the LOWEST the job can cost: it could never finish,
      so it is refused as invalid input (400, field `max_cost`);
    - the HIGHEST the submission can cost (all its jobs together), added to the real
      spend this month, over the owner's monthly budget: 402 `budget_exceeded`.
    A job with a fallback chain is held to the chain's most expensive model, whichever ends up answering.
    The worker enforces both again while running (jobs.worker.lifecycle.task_may_start: no task is started once
    the job's cost reaches max_cost or the owner's spend reaches the budget).
    """
    budget = monthly_budget_of(owner)
    if budget is None and all(r.max_cost is None for r in requests):
        return  # nothing to check against: skip the token counting
    total_high = Decimal("0")
    for request in requests:
        try:
            estimate = request_estimate(request).most_expensive
        except (UnknownModelError, UnknownProviderError):
            continue  # cannot run, so cannot spend: the worker fails it with the reason
        if request.max_cost is not None and estimate.cost_low > request.max_cost:
            low, high = (cost.quantize(Decimal("0.000001")) for cost in (estimate.cost_low, estimate.cost_high))
            raise validation_error("max_cost", f"max_cost is ${request.max_cost} but this job costs at least ${low} "
                                               f"(estimate: ${low} to ${high}).")
        total_high += estimate.cost_high
    if budget is not None:
        spend_check(user=owner, cost_high=total_high)


# --- the job, once per Idempotency-Key -----------------------------------------------------------

def request_fingerprint(request: JobRequest) -> str:
    """Hash of the checked request (the canonical body), for Idempotency-Key comparisons. What the
    submission derived (compare=False: the resolved model, the token count) is not part of it."""
    body = {f.name: getattr(request, f.name) for f in JobRequest.__dataclass_fields__.values() if f.compare}
    body["tasks"] = [[t.name, t.prompt] for t in request.tasks]
    return digest(body)


def job_create_idempotent(*, owner: User, request: JobRequest, idempotency_key: str) -> tuple[Job, bool]:
    """job_create under the client's Idempotency-Key: (job, created).

    The same key with the same body within IDEMPOTENCY_TTL_SECONDS returns the first job
    (created False); the same key with another body is a Conflict. An expired key is freed.
    """
    fingerprint = request_fingerprint(request)
    for _ in range(3):
        existing = Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.created_at >= timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS):
                if existing.request_fingerprint != fingerprint:
                    raise Conflict("This Idempotency-Key was already used with a different request body.")
                return existing, False
            Job.objects.filter(id=existing.id, idempotency_key=idempotency_key).update(idempotency_key="")
        try:
            with transaction.atomic():
                return job_create(owner=owner, request=request, idempotency_key=idempotency_key,
                                  request_fingerprint=fingerprint), True
        except IntegrityError:
            continue  # a concurrent request with the same key won the insert: answer with its job
    raise Conflict("A request with this Idempotency-Key is being processed; try again.")


def job_submit(*, owner: User, request: JobRequest, idempotency_key: str = "") -> tuple[Job, bool]:
    """The spending checks (400 on `max_cost`, 402 budget_exceeded), then the job, once per
    Idempotency-Key. Returns (job, created): created is False when the key was used before with
    the same body; a replay is not a new spend, so it is not checked against the budget again."""
    if idempotency_key:
        since = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
        if not Job.objects.filter(owner=owner, idempotency_key=idempotency_key, created_at__gte=since).exists():
            job_check_spending(owner=owner, requests=[request])
        return job_create_idempotent(owner=owner, request=request, idempotency_key=idempotency_key)
    job_check_spending(owner=owner, requests=[request])
    return job_create(owner=owner, request=request), True
