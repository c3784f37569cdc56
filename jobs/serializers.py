"""Input validation for job submission. Unknown fields are ignored (documented in README)."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from analysis.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.providers import PROVIDER_LABELS, PROVIDER_NAMES, provider_configured, provider_key_setting
from analysis.tasks import context_overrides


def validate_text(value: str, *, field: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError("must not contain NUL characters")
    return value


class TasksField(serializers.Field):
    """`tasks` for analyze: an object {name: prompt}, order kept."""

    default_error_messages = {
        "type": "must be an object mapping task names to prompts, e.g. {{\"summary\": \"Provide a brief summary\"}}",
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("type")
        if not data:
            raise serializers.ValidationError("at least one task is required")
        if len(data) > settings.MAX_TASKS:
            raise serializers.ValidationError(f"at most {settings.MAX_TASKS} tasks per job (got {len(data)})")
        tasks: list[tuple[str, str]] = []
        for name, prompt in data.items():
            tasks.append((clean_task_name(name), clean_prompt(prompt, name=name)))
        return tasks

    def to_representation(self, value):
        return dict(value)


def clean_task_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise serializers.ValidationError("task names must be non-empty strings")
    name = name.strip()
    if len(name) > settings.MAX_TASK_NAME_CHARS:
        raise serializers.ValidationError(f"task name {name[:40]!r}… is longer than {settings.MAX_TASK_NAME_CHARS} characters")
    if "\x00" in name:
        raise serializers.ValidationError("task names must not contain NUL characters")
    return name


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


class JobOptionsSerializer(serializers.Serializer):
    """Fields shared by analyze, batch and estimate."""

    transcript = serializers.CharField(trim_whitespace=False, allow_blank=False, required=True,
                                       error_messages={"blank": "The transcript is empty.",
                                                       "required": "A transcript is required."})
    provider = serializers.CharField()
    model = serializers.CharField(max_length=100)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, default="")
    max_output_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, allow_null=True)

    def validate_transcript(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The transcript is empty.")
        return validate_text(value, field="transcript")

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(f"is longer than {settings.MAX_SYSTEM_PROMPT_CHARS} characters")
        return validate_text(value, field="system_prompt")

    def validate_provider(self, value: str) -> str:
        value = value.strip().lower()
        if value not in PROVIDER_NAMES:
            raise serializers.ValidationError(
                f"Unknown provider {value!r}; choose one of: {', '.join(PROVIDER_NAMES)}.")
        if not provider_configured(value):
            raise serializers.ValidationError(
                f"{PROVIDER_LABELS[value]} is not configured on this server ({provider_key_setting(value)} is not set).")
        return value

    def validate(self, attrs):
        provider, model = attrs.get("provider"), attrs.get("model")
        if provider and model:
            try:
                attrs["model_info"] = resolve_model(provider, model.strip(), allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                                                    context_overrides=context_overrides())
            except (UnknownModelError, UnknownProviderError) as exc:
                raise serializers.ValidationError({"model": [str(exc)]}) from None
            attrs["model"] = model.strip()
        return attrs


class AnalyzeSerializer(JobOptionsSerializer):
    tasks = TasksField()
