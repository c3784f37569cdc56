"""Input validation for job submission. Unknown fields are ignored (documented in README).

The transcript may arrive as text (plain, SRT or WebVTT), as a list of
segments, or as an uploaded file (multipart); whatever the shape, validation
leaves the normalized text (one speaker turn a line, [hh:mm:ss] where the
source had times) in `transcript` and its source format in `transcript_format`.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis import structured
from analysis.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.processing import FALLBACKS, PROCESSING_MODES, mode_refusal
from analysis.providers import (
    PROVIDER_LABELS, endpoints, provider_configured, provider_key_setting, provider_names,
)
from analysis.selectors import profile_lookup
from analysis.serializers import validate_language_tag
from analysis.tasks import context_overrides
from analysis.tokens import count_tokens, token_upper_bound
from analysis.transcripts import FORMATS, TranscriptError, detect_format, normalize_transcript
from scriptripper.errors import PayloadTooLarge
from scriptripper.parsers import loads_checked

# Uploaded files by extension: the caption format they hold (None: detect; .txt files are often captions).
UPLOAD_FORMATS: dict[str, str | None] = {".txt": None, ".srt": "srt", ".vtt": "vtt", ".json": "segments"}
SEGMENTS_FORMAT = "segments"
TRANSCRIPT_REQUIRED = ("A transcript is required: send `transcript` (plain text, SRT or WebVTT), `segments`, "
                       "or upload a `file`.")


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField turns `12345` or `true` into "12345" / "True"."""

    default_error_messages = {"not_a_string": "must be a string, not {kind}"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=_json_kind(data))
        return super().to_internal_value(data)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate_text(value: str, *, field: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL characters")
    return value


def form_json(value: Any) -> Any:
    """A JSON-valued field as sent in a multipart form: a JSON string. Other values pass through."""
    if isinstance(value, str):
        try:
            # Checked like a JSON body: depth (RecursionError), NUL and lone surrogates.
            return loads_checked(value)
        except ValueError:
            return value  # the field's own type check names what was expected
    return value


@extend_schema_field({"type": "array", "items": {"type": "object", "required": ["text"], "properties": {
    "speaker": {"type": "string"}, "start": {"oneOf": [{"type": "number"}, {"type": "string"}]},
    "end": {"oneOf": [{"type": "number"}, {"type": "string"}]},
    "text": {"type": "string"}}}})
class SegmentsField(serializers.Field):
    """`segments`: a list of {"speaker"?, "start"?, "end"?, "text"}; parsed with the transcript."""

    default_error_messages = {
        "type": 'must be a list of objects like {{"speaker": "Alice", "start": 12.5, "end": 15.0, "text": "..."}}',
    }

    def to_internal_value(self, data):
        data = form_json(data)
        if not isinstance(data, list):
            self.fail("type")
        return data

    def to_representation(self, value):
        return value


TASK_OBJECT_SCHEMA = {
    "type": "object", "required": ["prompt"], "properties": {
        "prompt": {"type": "string"},
        "schema": {"type": "object", "description": (
            "JSON Schema (Draft 2020-12; an object at the root, local $refs only, size and depth capped) the answer "
            "follows: sent through the provider's native structured output, the answer validated (one repair try), "
            "then stored as a JSON value. Objects with a `citations` list [{turn, quote}] have them checked.")},
        "cite": {"type": "boolean", "description": (
            "a text answer with machine-readable citations beside it (metadata.tasks[name].references)")},
    }}


@extend_schema_field({"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, TASK_OBJECT_SCHEMA]},
                      "example": {"summary": "Provide a brief summary", "key_points": "Extract key points"}})
class TasksField(serializers.Field):
    """`tasks` for analyze: an object {name: prompt}, order kept."""

    default_error_messages = {
        "type": "must be an object mapping task names to prompts, e.g. {{\"summary\": \"Provide a brief summary\"}}",
    }

    def to_internal_value(self, data):
        data = form_json(data)
        if not isinstance(data, dict):
            self.fail("type")
        check_task_count(len(data))
        tasks: list[tuple[str, str]] = []
        for name, prompt in data.items():
            tasks.append((clean_task_name(name), clean_task(prompt, name=name)))
        return tasks

    def to_representation(self, value):
        return dict(value)


def check_task_count(count: int) -> None:
    if not count:
        raise serializers.ValidationError("at least one task is required")
    if count > settings.MAX_TASKS:
        raise serializers.ValidationError(f"at most {settings.MAX_TASKS} tasks per job (got {count})")


def clean_task_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise serializers.ValidationError("task names must be non-empty strings")
    name = name.strip()
    if len(name) > settings.MAX_TASK_NAME_CHARS:
        raise serializers.ValidationError(f"task name {name[:40]!r}… is longer than {settings.MAX_TASK_NAME_CHARS} characters")
    if "\x00" in name:
        raise serializers.ValidationError("task names must not contain NUL characters")
    return name


def clean_task(value, *, name: str) -> str:
    """A task as sent: a prompt string (kept as it is) or {"prompt", "schema"?, "cite"?}, stored as the
    envelope analysis/structured.py reads back. A bad schema is an error on `tasks.<name>.schema`."""
    if isinstance(value, str) and not value.startswith(structured.ENVELOPE):
        return clean_prompt(value, name=name)
    try:
        request = structured.task_object(value, name=name)
    except structured.TaskSpecError as exc:
        raise serializers.ValidationError({name: {exc.field: [str(exc)]}} if exc.field else str(exc)) from None
    clean_prompt(request.prompt, name=name)
    return structured.encode_task(request)


def clean_prompt(prompt, *, name: str) -> str:
    if not isinstance(prompt, str):
        raise serializers.ValidationError(f"the prompt of task {name!r} must be a string")
    if not prompt.strip():
        raise serializers.ValidationError(f"the prompt of task {name!r} is empty")
    if len(prompt) > settings.MAX_PROMPT_CHARS:
        raise serializers.ValidationError(
            f"the prompt of task {name!r} is {len(prompt)} characters; the limit is {settings.MAX_PROMPT_CHARS}")
    if "\x00" in prompt:
        raise serializers.ValidationError(f"the prompt of task {name!r} must not contain NUL characters")
    return prompt


@extend_schema_field({"type": "array", "items": {"type": "object", "required": ["task_name", "prompt"], "properties": {
    "task_name": {"type": "string"}, "prompt": {"type": "string"},
    "schema": TASK_OBJECT_SCHEMA["properties"]["schema"], "cite": TASK_OBJECT_SCHEMA["properties"]["cite"]}}})
class BatchTasksField(serializers.Field):
    """`tasks` for batch (the seed's analyze_batch_task): [{"task_name", "prompt"}, ...], order kept."""

    default_error_messages = {
        "type": 'must be a list of objects like {{"task_name": "Summary", "prompt": "Summarize the meeting"}}',
    }

    def to_internal_value(self, data):
        data = form_json(data)
        if not isinstance(data, list):
            self.fail("type")
        check_task_count(len(data))
        tasks: list[tuple[str, str]] = []
        seen: set[str] = set()
        for item in data:
            if not isinstance(item, dict) or "task_name" not in item or "prompt" not in item:
                self.fail("type")
            name = clean_task_name(item["task_name"])
            if name in seen:
                # Results are keyed by task name: a second task of the same name would overwrite the first.
                raise serializers.ValidationError(f"Task names must be unique within a batch: {name!r} appears twice.")
            seen.add(name)
            extra = {key: item[key] for key in ("schema", "cite") if key in item}
            tasks.append((name, clean_task({"prompt": item["prompt"], **extra} if extra else item["prompt"],
                                           name=name)))
        return tasks

    def to_representation(self, value):
        return [{"task_name": name, "prompt": structured.decode_task(prompt).prompt} for name, prompt in value]


def check_provider(value: str) -> str:
    value = value.strip().lower()
    names = provider_names()
    if value not in names:
        raise serializers.ValidationError(
            f"Unknown provider {value!r}; choose one of: {', '.join(names)}.")
    if not provider_configured(value):
        raise serializers.ValidationError(
            f"{PROVIDER_LABELS[value]} is not configured on this server ({provider_key_setting(value)} is not set).")
    return value


class JobOptionsSerializer(serializers.Serializer):
    """Fields shared by analyze, batch and estimate: the transcript in any shape, provider, model, options.

    Exactly one of `transcript` (text, SRT or WebVTT; `format` names it, else it is detected),
    `segments` or `file` (multipart upload: .txt, .srt, .vtt, or .json segments).
    """

    transcript = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False,
                                     help_text="the transcript's format; detected when absent")
    segments = SegmentsField(required=False, help_text='[{"speaker"?, "start"?, "end"?, "text"}, ...]')
    file = serializers.FileField(required=False, allow_empty_file=False,
                                 help_text="multipart upload: .txt, .srt, .vtt, or .json (a segments list)")
    provider = StrictCharField(required=False)
    model = StrictCharField(required=False, max_length=100)
    system_prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    max_output_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, allow_null=True)
    max_cost = serializers.DecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=6, min_value=0, coerce_to_string=False,
        help_text="USD. Refused at submit (400) if the job's lowest estimated cost is above it; "
                  "while running, no further task is started once the job's real cost reaches it.")
    reuse = serializers.BooleanField(
        required=False, default=True,
        help_text="reuse the output of an identical task of yours (same transcript, provider, model, system prompt, "
                  "prompt and parameters) finished within RESULT_REUSE_TTL_SECONDS, at no cost; false: always call")
    language = StrictCharField(
        required=False, allow_blank=True, max_length=35,
        help_text="BCP 47 tag (en, pt-BR) of the language every answer is written in; absent: the transcript's")
    callback_url = StrictCharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="http(s) URL called with the job document (Standard Webhooks signature) when the job ends")
    processing = serializers.ChoiceField(
        choices=PROCESSING_MODES, required=False,
        help_text="standard (default; `low` jobs: LOW_QUEUE_PROCESSING), flex (OpenAI and Gemini's best-effort tier, "
                  "synchronous, at the flex price) or batch (the provider's batch API: results within hours at the "
                  "batch price); a mode the provider or model does not offer is a 400")
    fallback = serializers.ChoiceField(
        choices=FALLBACKS, required=False,
        help_text="what a call its processing mode cannot finish does (flex refused, batch expired or failed, "
                  "BATCH_MAX_WAIT passed): standard (sent again at the standard price; the default) or fail")

    def validate_callback_url(self, value: str) -> str:
        from jobs.webhooks import CallbackUrlError, validate_callback_url

        if not value.strip():
            return ""
        try:
            return validate_callback_url(value)
        except CallbackUrlError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_language(self, value: str) -> str:
        return validate_language_tag(value)

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(f"is longer than {settings.MAX_SYSTEM_PROMPT_CHARS} characters")
        return validate_text(value, field="system_prompt")

    def validate_provider(self, value: str) -> str:
        return check_provider(value)

    def apply_profile(self, attrs: dict) -> dict:
        """Fill tasks and defaults from a saved profile (AnalyzeSerializer); here, nothing to do."""
        return attrs

    def validate(self, attrs):
        missing: dict = {}
        try:
            attrs = self.apply_profile(attrs)
        except serializers.ValidationError as exc:
            missing.update(exc.detail)  # reported together with whatever else is missing
        attrs.setdefault("system_prompt", "")
        if attrs.get("language") and attrs.get("tasks"):
            # Every task of the job, the reduce step included, answers in it (analysis/structured.py).
            attrs["tasks"] = [(name, structured.with_language(prompt, attrs["language"]))
                              for name, prompt in attrs["tasks"]]
        provider, model = (attrs.get("provider") or "").strip(), (attrs.get("model") or "").strip()
        if not any(attrs.get(name) is not None for name in ("transcript", "segments", "file")):
            missing["transcript"] = [TRANSCRIPT_REQUIRED]
        if not provider:
            missing["provider"] = [f"A provider is required: one of {', '.join(provider_names())}."]
        if not model:
            missing["model"] = ["A model is required."]
        if missing:
            raise serializers.ValidationError(missing)
        try:
            # Again here: a profile's default provider did not go through validate_provider.
            attrs["provider"] = provider = check_provider(provider)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"provider": exc.detail}) from None
        try:
            attrs["model_info"] = info = resolve_model(provider, model, allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                                                       context_overrides=context_overrides(), endpoints=endpoints())
        except (UnknownModelError, UnknownProviderError) as exc:
            raise serializers.ValidationError({"model": [str(exc)]}) from None
        # The exact id the name resolved to (an id or a listed alias, in the provider's spelling) is what
        # the job stores, sends and is billed for.
        attrs["model"] = info.name
        if refusal := mode_refusal(provider=provider, info=info, processing=attrs.get("processing") or "standard"):
            raise serializers.ValidationError({"processing": [refusal]})
        self.read_transcript(attrs)
        return attrs

    # --- the transcript, in whichever shape it came ---------------------------------------------
    def read_transcript(self, attrs: dict) -> None:
        text = attrs.pop("transcript", None)
        segments = attrs.pop("segments", None)
        upload = attrs.pop("file", None)
        fmt = attrs.pop("format", None)
        if text is not None and not text.strip() and (segments is not None or upload is not None):
            text = None  # an empty form field next to the real source
        given = [name for name, value in (("transcript", text), ("segments", segments), ("file", upload))
                 if value is not None]
        if not given:
            raise serializers.ValidationError({"transcript": [TRANSCRIPT_REQUIRED]})
        if len(given) > 1:
            raise serializers.ValidationError({given[1]: [
                f"Send the transcript one way only; got {' and '.join(given)}."]})
        field = given[0]
        if upload is not None:
            text, segments, fmt = self._read_upload(upload, fmt)
        if segments is not None:
            fmt = SEGMENTS_FORMAT
            source_chars = sum(len(s.get("text") or "") for s in segments if isinstance(s, dict)
                               and isinstance(s.get("text"), str))
        else:
            source_chars = len(text)
            if not text.strip():
                raise serializers.ValidationError({field: ["The transcript is empty."]})
            if "\x00" in text:
                raise serializers.ValidationError({field: ["must not contain NUL characters"]})
            fmt = fmt or detect_format(text)
        self._check_chars(source_chars)
        try:
            if segments is not None:
                normalized = normalize_transcript(segments=segments)
            else:
                normalized = normalize_transcript(text, fmt)
        except TranscriptError as exc:
            raise serializers.ValidationError({field: [exc.message]}) from None
        if not normalized.strip():
            raise serializers.ValidationError({field: ["The transcript has no text (only timings or markup)."]})
        self._check_chars(len(normalized))
        self._check_tokens(normalized, provider=attrs["provider"], model=attrs["model"])
        attrs["transcript"] = normalized
        attrs["transcript_format"] = fmt

    @staticmethod
    def _read_upload(upload, fmt: str | None) -> tuple[str | None, list | None, str | None]:
        suffix = PurePath(upload.name or "").suffix.lower()
        if suffix not in UPLOAD_FORMATS:
            raise serializers.ValidationError({"file": [
                f"Unsupported file type {suffix or '(no extension)'!r}: upload .txt, .srt, .vtt or .json (segments)."]})
        if upload.size is not None and upload.size > settings.MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"The uploaded file is {upload.size:,} bytes; the limit is "
                                  f"{settings.MAX_REQUEST_BYTES:,} bytes (MAX_REQUEST_BYTES).")
        try:
            raw = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise serializers.ValidationError({"file": [
                f"The file is not UTF-8 text (undecodable byte at position {exc.start})."]}) from None
        if UPLOAD_FORMATS[suffix] == SEGMENTS_FORMAT:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise serializers.ValidationError({"file": [f"The file is not valid JSON: {exc}"]}) from None
            if isinstance(data, dict) and "segments" in data:
                data = data["segments"]  # {"segments": [...]}, as some exporters wrap it
            if not isinstance(data, list):
                raise serializers.ValidationError({"file": ["A .json file must hold a list of segments "
                                                            '[{"speaker"?, "start"?, "end"?, "text"}, ...].']})
            return None, data, SEGMENTS_FORMAT
        return raw, None, fmt or UPLOAD_FORMATS[suffix]

    @staticmethod
    def _check_chars(chars: int) -> None:
        if chars > settings.MAX_TRANSCRIPT_CHARS:
            raise PayloadTooLarge(f"The transcript is {chars:,} characters long; the limit is "
                                  f"{settings.MAX_TRANSCRIPT_CHARS:,} (MAX_TRANSCRIPT_CHARS).")

    @staticmethod
    def _check_tokens(text: str, *, provider: str, model: str) -> None:
        if token_upper_bound(text) <= settings.MAX_TRANSCRIPT_TOKENS:
            return  # clearly under the limit: no need to encode it on the submit path
        tokens = count_tokens(text, provider=provider, model=model)
        if tokens > settings.MAX_TRANSCRIPT_TOKENS:
            raise PayloadTooLarge(f"The transcript is about {tokens:,} tokens long for {model}; the limit is "
                                  f"{settings.MAX_TRANSCRIPT_TOKENS:,} tokens (MAX_TRANSCRIPT_TOKENS).")


class AnalyzeSerializer(JobOptionsSerializer):
    """analyze (and estimate): the tasks as {name: prompt}, or the name or id of a saved profile."""

    tasks = TasksField(required=False)
    profile = StrictCharField(required=False, max_length=100,
                                    help_text="a profile's name or id, instead of tasks")
    structured = serializers.BooleanField(
        required=False, default=True,
        help_text="with a profile: false asks its tasks in their free-text wording, without their schemas")

    def apply_profile(self, attrs: dict) -> dict:
        has_tasks, ref = "tasks" in attrs, (attrs.get("profile") or "").strip()
        if has_tasks == bool(ref):
            raise serializers.ValidationError({"tasks": [
                "Send either `tasks` ({name: prompt}) or `profile` (a profile's name or id), not both."
                if has_tasks else "Send either `tasks` ({name: prompt}) or `profile` (a profile's name or id)."]})
        if not ref:
            return attrs
        request = self.context.get("request")
        user = getattr(request, "user", None) or self.context.get("user")
        profile = profile_lookup(user=user, ref=ref) if user is not None else None
        if profile is None:
            raise serializers.ValidationError({"profile": [
                f"No profile {ref!r}: give the name or id of one of yours or a built-in one (GET /api/v1/profiles)."]})
        attrs["tasks"] = profile.task_pairs(structured=attrs.get("structured", True))
        attrs["profile_name"] = profile.name
        if attrs.get("language") is None and profile.language:
            attrs["language"] = profile.language
        if attrs.get("processing") is None and profile.processing:
            attrs["processing"] = profile.processing
        if attrs.get("fallback") is None and profile.fallback:
            attrs["fallback"] = profile.fallback
        # The request's provider, model and system prompt override the profile's defaults. The default model
        # goes with the default provider only: it means nothing to another provider.
        if not attrs.get("provider"):
            attrs["provider"] = profile.default_provider
            if not attrs.get("model"):
                attrs["model"] = profile.default_model
        elif not attrs.get("model") and attrs["provider"].strip().lower() == profile.default_provider:
            attrs["model"] = profile.default_model
        if attrs.get("system_prompt") is None:
            attrs["system_prompt"] = profile.system_prompt
        return attrs


class BatchSerializer(JobOptionsSerializer):
    """batch: the seed's analyze_batch_task shape, tasks as [{"task_name", "prompt"}]."""

    tasks = BatchTasksField()


class JobListFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/v1/jobs`; a malformed value is a 400, never silently ignored."""

    status = serializers.ChoiceField(choices=["queued", "started", "finished", "failed", "canceled"], required=False)
    provider = serializers.CharField(required=False, max_length=32,
                                     help_text="gemini, openai, anthropic or a configured endpoint's name")
    model = serializers.CharField(required=False, max_length=100)
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601; jobs created at or after")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601; jobs created before")

    def validate_provider(self, value: str) -> str:
        value = value.strip().lower()
        if value not in provider_names():
            raise serializers.ValidationError(f"Unknown provider {value!r}; choose one of: {', '.join(provider_names())}.")
        return value

    def validate(self, attrs):
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise serializers.ValidationError({"created_before": ["must be later than created_after"]})
        return attrs
