"""Field types every API input serializer shares: strict strings, JSON-valued form fields, transcript segments.

A multipart form sends JSON-valued fields (`tasks`, `segments`) as JSON strings: `form_json` reads
them as a JSON body would be read.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scriptripper.parsers import loads_checked


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


def no_nul(value: str) -> str:
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


def check_range(attrs: dict, start: str, end: str) -> dict:
    """`attrs` of a serializer's validate() whose `end` (a datetime), when given with `start`, comes after it."""
    if attrs.get(start) and attrs.get(end) and attrs[start] >= attrs[end]:
        raise serializers.ValidationError({end: [f"must be later than {start}"]})
    return attrs
