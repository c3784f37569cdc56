"""Input and output shapes of the profile endpoints."""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.models import AnalysisProfile
from analysis.providers import PROVIDER_NAMES

# Names are what clients type in `"profile": "meeting-notes"`: letters, digits, - _ . and spaces,
# never all digits (a number refers to a profile's id).
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")


def _no_nul(value: str, what: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError(f"{what} must not contain NUL characters")
    return value


@extend_schema_field({"type": "array", "items": {"type": "object", "required": ["name", "prompt"], "properties": {
    "name": {"type": "string"}, "prompt": {"type": "string"}}}})
class ProfileTasksField(serializers.Field):
    """An ordered list of {"name", "prompt"}; an object {name: prompt} is accepted too (order kept)."""

    default_error_messages = {
        "type": 'must be a list of {{"name": ..., "prompt": ...}} objects',
    }

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = [{"name": name, "prompt": prompt} for name, prompt in data.items()]
        if not isinstance(data, list):
            self.fail("type")
        if not data:
            raise serializers.ValidationError("at least one task is required")
        if len(data) > settings.MAX_TASKS:
            raise serializers.ValidationError(f"at most {settings.MAX_TASKS} tasks per profile (got {len(data)})")
        tasks: list[dict[str, str]] = []
        seen: set[str] = set()
        for index, item in enumerate(data):
            if not isinstance(item, dict) or set(item) - {"name", "prompt"}:
                raise serializers.ValidationError(f'tasks[{index}] must be an object {{"name": ..., "prompt": ...}}')
            name, prompt = item.get("name"), item.get("prompt")
            if not isinstance(name, str) or not name.strip():
                raise serializers.ValidationError(f"tasks[{index}]: name must be a non-empty string")
            name = name.strip()
            if len(name) > settings.MAX_TASK_NAME_CHARS:
                raise serializers.ValidationError(
                    f"tasks[{index}]: name is longer than {settings.MAX_TASK_NAME_CHARS} characters")
            if name in seen:
                raise serializers.ValidationError(f"tasks[{index}]: the task name {name!r} is used twice")
            seen.add(name)
            if not isinstance(prompt, str) or not prompt.strip():
                raise serializers.ValidationError(f"tasks[{index}]: prompt must be a non-empty string")
            if len(prompt) > settings.MAX_PROMPT_CHARS:
                raise serializers.ValidationError(
                    f"tasks[{index}]: prompt is {len(prompt)} characters; the limit is {settings.MAX_PROMPT_CHARS}")
            tasks.append({"name": _no_nul(name, "task names"), "prompt": _no_nul(prompt, "prompts")})
        return tasks

    def to_representation(self, value):
        return value


class ProfileInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tasks = ProfileTasksField()
    default_provider = serializers.CharField(required=False, allow_blank=True)
    default_model = serializers.CharField(required=False, allow_blank=True, max_length=100)

    def validate_name(self, value: str) -> str:
        if not _PROFILE_NAME.match(value) or value.isdigit():
            raise serializers.ValidationError(
                "use letters, digits, spaces, '-', '_' or '.', starting with a letter or digit, and not only digits")
        return value

    def validate_description(self, value: str) -> str:
        return _no_nul(value, "the description")

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(f"is longer than {settings.MAX_SYSTEM_PROMPT_CHARS} characters")
        return _no_nul(value, "the system prompt")

    def validate_default_provider(self, value: str) -> str:
        value = value.strip().lower()
        if value and value not in PROVIDER_NAMES:
            raise serializers.ValidationError(f"Unknown provider {value!r}; choose one of: {', '.join(PROVIDER_NAMES)}.")
        return value

    def validate_default_model(self, value: str) -> str:
        return value.strip()


class ProfileOutputSerializer(serializers.ModelSerializer):
    builtin = serializers.BooleanField(source="is_builtin", read_only=True)
    tasks = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))

    class Meta:
        model = AnalysisProfile
        fields = ["id", "name", "description", "system_prompt", "tasks", "default_provider", "default_model",
                  "builtin", "created_at", "updated_at"]
        read_only_fields = fields
