"""Field types of the job submission serializers: the tasks of a job, each checked on its own (the fields every
input serializer shares are in scriptripper/input_fields.py).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.engine import structured
from scriptripper.input_fields import form_json

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


class _TaskCollectionField(serializers.Field):
    """The tasks of a job as [(name, stored prompt)], in the order sent; `container` is the JSON type."""

    container: type = dict

    def to_internal_value(self, data):
        data = form_json(data)
        if not isinstance(data, self.container):
            self.fail("type")
        if not data:
            raise serializers.ValidationError("at least one task is required")
        if len(data) > settings.MAX_TASKS:
            raise serializers.ValidationError(f"at most {settings.MAX_TASKS} tasks per job (got {len(data)})")
        return self.tasks(data)

    def tasks(self, data) -> list[tuple[str, str]]:
        raise NotImplementedError


@extend_schema_field({"type": "object", "additionalProperties": {"oneOf": [{"type": "string"}, TASK_OBJECT_SCHEMA]},
                      "example": {"summary": "Provide a brief summary", "key_points": "Extract key points"}})
class TasksField(_TaskCollectionField):
    """`tasks` for analyze: an object {name: prompt}, order kept."""

    default_error_messages = {
        "type": "must be an object mapping task names to prompts, e.g. {{\"summary\": \"Provide a brief summary\"}}",
    }

    def tasks(self, data: dict) -> list[tuple[str, str]]:
        return [(clean_task_name(name), clean_task(prompt, name=name)) for name, prompt in data.items()]

    def to_representation(self, value):
        return dict(value)


@extend_schema_field({"type": "array", "items": {"type": "object", "required": ["task_name", "prompt"], "properties": {
    "task_name": {"type": "string"}, "prompt": {"type": "string"},
    "schema": TASK_OBJECT_SCHEMA["properties"]["schema"], "cite": TASK_OBJECT_SCHEMA["properties"]["cite"]}}})
class BatchTasksField(_TaskCollectionField):
    """`tasks` for batch (analyze_batch_task's shape): [{"task_name", "prompt"}, ...], order kept."""

    container = list
    default_error_messages = {
        "type": 'must be a list of objects like {{"task_name": "Summary", "prompt": "Summarize the meeting"}}',
    }

    def tasks(self, data: list) -> list[tuple[str, str]]:
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
    envelope analysis/engine/structured.py reads back. A bad schema is an error on `tasks.<name>.schema`."""
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

