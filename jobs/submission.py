"""A submission, from checked input to a queued job: the one path of analyze, batch, estimate and the CLI.

The input serializers (jobs/serializers.py) check each field on its own (its shape, a provider's name and
key, a callback URL). Everything else happens here, once each: the saved profile, the model (resolved
once; the ModelInfo goes on to the estimate and the resolved id into the job row), the transcript (read
from whichever shape it came in, normalised, held to the size limits; its tokens counted at most once,
and only when a check needs them), the spending checks, and the job, once per Idempotency-Key.

Errors are ServiceErrors; a bad field's names the field, in the same words DRF would use.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import monthly_budget_of, spend_check
from analysis.analyze import context_overrides, estimate_job
from analysis.clients import endpoints, provider_error, provider_names
from analysis.engine import structured as structured_tasks
from analysis.engine.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.engine.estimate import Estimate
from analysis.engine.planning import TaskSpec
from analysis.engine.processing import mode_refusal
from analysis.engine.prompts import transcript_document
from analysis.engine.tokens import count_tokens, token_upper_bound
from analysis.engine.transcripts import TranscriptError, detect_format, normalize_transcript
from analysis.selectors import profile_lookup
from jobs.models import Job
from jobs.services import JobRequest, digest, job_create
from jobs.webhooks import CallbackUrlError, validate_callback_url
from scriptripper.errors import Conflict, PayloadTooLarge, field_errors, validation_error

# Uploaded files by extension: the caption format they hold (None: detect; .txt files are often captions).
UPLOAD_FORMATS: dict[str, str | None] = {".txt": None, ".srt": "srt", ".vtt": "vtt", ".json": "segments"}
SEGMENTS_FORMAT = "segments"
TRANSCRIPT_REQUIRED = ("A transcript is required: send `transcript` (plain text, SRT or WebVTT), `segments`, "
                       "or upload a `file`.")
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


def job_request_build(*, owner: User, kind: str, transcript: str | None = None, format: str | None = None,
                      segments: list | None = None, file: File | None = None, provider: str | None = None,
                      model: str | None = None, system_prompt: str | None = None,
                      tasks: list[tuple[str, str]] | None = None, profile: str | None = None,
                      structured: bool = True, max_output_tokens: int | None = None,
                      temperature: float | None = None, max_cost: Decimal | None = None, reuse: bool = True,
                      language: str | None = None, callback_url: str = "", processing: str | None = None,
                      fallback: str | None = None) -> JobRequest:
    """The JobRequest of a submission, everything checked. None: the field was not sent (a profile may fill it)."""
    errors: dict[str, list[str]] = {}  # what is missing, reported together
    if callback_url.strip():
        try:
            callback_url = validate_callback_url(callback_url)
        except CallbackUrlError as exc:
            errors["callback_url"] = [str(exc)]
    else:
        callback_url = ""
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
    provider, model = (provider or "").strip(), (model or "").strip()
    if transcript is None and segments is None and file is None:
        errors["transcript"] = [TRANSCRIPT_REQUIRED]
    if not provider:
        errors["provider"] = [f"A provider is required: one of {', '.join(provider_names())}."]
    elif provider_from_profile and (problem := provider_error(provider)) is not None:
        # The request's own provider was checked (and lower-cased) by the input serializer; a profile's is
        # stored lower-cased and checked here, where the profile is read.
        errors["provider"] = [problem]
    if not model:
        errors["model"] = ["A model is required."]
    if errors:
        raise field_errors(errors)

    try:
        info = resolve_model(provider, model, allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                             context_overrides=context_overrides(), endpoints=endpoints())
    except (UnknownModelError, UnknownProviderError) as exc:
        raise field_errors({"model": [str(exc)]}) from None
    # A mode the provider or model does not offer is refused here, never run at a silent standard price.
    if refusal := mode_refusal(provider=provider, info=info, processing=processing or "standard"):
        raise field_errors({"processing": [refusal]})
    text, transcript_format = read_transcript(text=transcript, segments=segments, upload=file, fmt=format)
    return JobRequest(
        provider=provider,
        # The exact id the name resolved to (an id or a listed alias, in the provider's spelling) is what the
        # job stores, sends and is billed for.
        model=info.name,
        transcript=text,
        transcript_format=transcript_format,
        system_prompt=system_prompt or "",
        tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in tasks],
        kind=kind,
        profile_name=profile_name,
        params={key: value for key, value in (("max_output_tokens", max_output_tokens),
                                              ("temperature", temperature)) if value is not None},
        max_cost=max_cost,
        reuse_results=reuse,
        callback_url=callback_url,
        language=language or "",
        processing=processing,
        fallback=fallback or "standard",
        model_info=info,
        transcript_tokens=_transcript_tokens(text, provider=provider, model=info.name),
    )


# --- the transcript, in whichever shape it came ---------------------------------------------------

def read_transcript(*, text: str | None, segments: list | None, upload: File | None,
                    fmt: str | None) -> tuple[str, str]:
    """(the normalised transcript: one speaker turn a line, [hh:mm:ss] where the source had times; its
    source format), held to MAX_TRANSCRIPT_CHARS before and after normalising."""
    if text is not None and not text.strip() and (segments is not None or upload is not None):
        text = None  # an empty form field next to the real source
    given = [name for name, value in (("transcript", text), ("segments", segments), ("file", upload))
             if value is not None]
    if not given:
        raise field_errors({"transcript": [TRANSCRIPT_REQUIRED]})
    if len(given) > 1:
        raise field_errors({given[1]: [f"Send the transcript one way only; got {' and '.join(given)}."]})
    field = given[0]
    if upload is not None:
        text, segments, fmt = _read_upload(upload, fmt)
    if segments is not None:
        fmt = SEGMENTS_FORMAT
        source_chars = sum(len(s.get("text") or "") for s in segments if isinstance(s, dict)
                           and isinstance(s.get("text"), str))
    else:
        source_chars = len(text)
        if not text.strip():
            raise field_errors({field: ["The transcript is empty."]})
        if "\x00" in text:
            raise field_errors({field: ["must not contain NUL characters"]})
        fmt = fmt or detect_format(text)
    _check_chars(source_chars)
    try:
        normalized = normalize_transcript(segments=segments) if segments is not None else normalize_transcript(text, fmt)
    except TranscriptError as exc:
        raise field_errors({field: [exc.message]}) from None
    if not normalized.strip():
        raise field_errors({field: ["The transcript has no text (only timings or markup)."]})
    _check_chars(len(normalized))
    return normalized, fmt


def _read_upload(upload: File, fmt: str | None) -> tuple[str | None, list | None, str | None]:
    suffix = PurePath(upload.name or "").suffix.lower()
    if suffix not in UPLOAD_FORMATS:
        raise field_errors({"file": [
            f"Unsupported file type {suffix or '(no extension)'!r}: upload .txt, .srt, .vtt or .json (segments)."]})
    if upload.size is not None and upload.size > settings.MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"The uploaded file is {upload.size:,} bytes; the limit is "
                              f"{settings.MAX_REQUEST_BYTES:,} bytes (MAX_REQUEST_BYTES).")
    try:
        raw = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise field_errors({"file": [f"The file is not UTF-8 text (undecodable byte at position {exc.start})."]}) from None
    if UPLOAD_FORMATS[suffix] == SEGMENTS_FORMAT:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise field_errors({"file": [f"The file is not valid JSON: {exc}"]}) from None
        if isinstance(data, dict) and "segments" in data:
            data = data["segments"]  # {"segments": [...]}, as some exporters wrap it
        if not isinstance(data, list):
            raise field_errors({"file": ["A .json file must hold a list of segments "
                                         '[{"speaker"?, "start"?, "end"?, "text"}, ...].']})
        return None, data, SEGMENTS_FORMAT
    return raw, None, fmt or UPLOAD_FORMATS[suffix]


def _check_chars(chars: int) -> None:
    if chars > settings.MAX_TRANSCRIPT_CHARS:
        raise PayloadTooLarge(f"The transcript is {chars:,} characters long; the limit is "
                              f"{settings.MAX_TRANSCRIPT_CHARS:,} (MAX_TRANSCRIPT_CHARS).")


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
    """The estimate of a checked request, from the model it resolved to and the tokens already counted."""
    return estimate_job(transcript=request.transcript, provider=request.provider,
                        model=request.model_info or request.model, system_prompt=request.system_prompt,
                        tasks=request.tasks, max_output_tokens=request.params.get("max_output_tokens"),
                        transcript_tokens=request.transcript_tokens, processing=request.processing or "standard")


def job_check_spending(*, owner: User, requests: list[JobRequest]) -> None:
    """Refuse a submission before anything is created when it could cost more than allowed.

    - a job's own `max_cost` below the LOWEST the job can cost: it could never finish,
      so it is refused as invalid input (400, field `max_cost`);
    - the HIGHEST the submission can cost (all its jobs together), added to the real
      spend this month, over the owner's monthly budget: 402 `budget_exceeded`.
    The worker enforces both again while running (jobs.worker.lifecycle.task_may_start: no task is started once
    the job's cost reaches max_cost or the owner's spend reaches the budget).
    """
    budget = monthly_budget_of(owner)
    if budget is None and all(r.max_cost is None for r in requests):
        return  # nothing to check against: skip the token counting
    total_high = Decimal("0")
    for request in requests:
        try:
            estimate = request_estimate(request)
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
