"""The shapes of the transcript and search endpoints: input serializers (each field on its own; the transcript is
read by transcripts/inputs.py), and output serializers, the one source of each response and of the OpenAPI schema.

The transcript fields (`transcript`, `format`, `segments`, `file`) are the same for POST transcripts and for
every job submission (jobs' input serializers extend TranscriptSourceSerializer).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.engine.transcripts import FORMATS
from analysis.serializers import validate_language_tag
from scriptripper.input_fields import SegmentsField, StrictCharField, check_range, form_json, no_nul
from scriptripper.output_fields import BlankAsNullCharField
from transcripts.models import TOKEN_COUNT_MODEL

MAX_TAGS = 50
MAX_TAG_CHARS = 50


# --- input -----------------------------------------------------------------------------------------

class TranscriptSourceSerializer(serializers.Serializer):
    """Exactly one of `transcript` (text, SRT or WebVTT; `format` names it, else it is detected),
    `segments` or `file` (multipart upload: .txt, .srt, .vtt, or .json segments)."""

    transcript = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False,
                                     help_text="the transcript's format; detected when absent")
    segments = SegmentsField(required=False, help_text='[{"speaker"?, "start"?, "end"?, "text"}, ...]')
    file = serializers.FileField(required=False, allow_empty_file=False,
                                 help_text="multipart upload: .txt, .srt, .vtt, or .json (a segments list)")


@extend_schema_field({"type": "array", "items": {"type": "string", "maxLength": MAX_TAG_CHARS},
                      "maxItems": MAX_TAGS, "example": ["sales", "acme"]})
class TagsField(serializers.Field):
    """A list of short labels (a JSON string of one in a multipart form); blanks dropped, duplicates once."""

    default_error_messages = {"type": 'must be a list of strings, e.g. ["sales", "acme"]'}

    def to_internal_value(self, data):
        data = form_json(data)
        if not isinstance(data, list) or not all(isinstance(tag, str) for tag in data):
            self.fail("type")
        tags = list(dict.fromkeys(no_nul(tag.strip()) for tag in data if tag.strip()))
        if len(tags) > MAX_TAGS:
            raise serializers.ValidationError(f"at most {MAX_TAGS} tags (got {len(tags)})")
        if too_long := [tag for tag in tags if len(tag) > MAX_TAG_CHARS]:
            raise serializers.ValidationError(f"tag {too_long[0][:40]!r}… is longer than {MAX_TAG_CHARS} characters")
        return tags

    def to_representation(self, value):
        return list(value)


class TranscriptFieldsSerializer(serializers.Serializer):
    """What describes a stored transcript: set on POST, changed by PATCH."""

    title = StrictCharField(required=False, allow_blank=True, max_length=200)
    occurred_at = serializers.DateTimeField(required=False, help_text="when the meeting took place (ISO 8601); "
                                                                      "default: when it was stored")
    tags = TagsField(required=False)
    transcript_language = StrictCharField(
        required=False, allow_blank=True, max_length=35,
        help_text="BCP 47 tag (en, de, pt-BR) of the language spoken: search stems words in it where PostgreSQL "
                  "has a text search configuration for it (`simple` otherwise)")

    def validate_title(self, value: str) -> str:
        return no_nul(value.strip())

    def validate_transcript_language(self, value: str) -> str:
        return validate_language_tag(value)


class TranscriptCreateSerializer(TranscriptSourceSerializer, TranscriptFieldsSerializer):
    pass


class TranscriptListFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/v1/transcripts`; a malformed value is a 400, never silently ignored."""

    q = StrictCharField(required=False, help_text="full-text query over the transcripts' turns (web search syntax: "
                                                  '"quoted phrase", OR, -word)')
    tag = StrictCharField(required=False, max_length=MAX_TAG_CHARS)
    speaker = StrictCharField(required=False, max_length=200)
    occurred_after = serializers.DateTimeField(required=False, help_text="ISO 8601; meetings at or after")
    occurred_before = serializers.DateTimeField(required=False, help_text="ISO 8601; meetings before")

    def validate_q(self, value: str) -> str:
        return search_text(value)

    def validate(self, attrs):
        return check_range(attrs, "occurred_after", "occurred_before")


class SearchFilterSerializer(TranscriptListFilterSerializer):
    """Query parameters of `GET /api/v1/search`."""

    q = StrictCharField(help_text='what to find (web search syntax: "quoted phrase", OR, -word)')
    transcript = serializers.UUIDField(required=False, help_text="only this transcript's turns")
    cursor = StrictCharField(required=False, help_text="from the `next` link")
    limit = serializers.IntegerField(required=False, min_value=1, help_text=(
        "hits per page (default TRANSCRIPTS_PAGE_SIZE, at most TRANSCRIPTS_MAX_PAGE_SIZE)"))

    def validate_limit(self, value: int) -> int:
        return min(value, settings.TRANSCRIPTS_MAX_PAGE_SIZE)


def search_text(value: str) -> str:
    value = no_nul(value.strip())
    if not value:
        raise serializers.ValidationError("must not be empty")
    if len(value) > settings.SEARCH_MAX_QUERY_CHARS:
        raise serializers.ValidationError(f"is {len(value)} characters long; the limit is "
                                          f"{settings.SEARCH_MAX_QUERY_CHARS} (SEARCH_MAX_QUERY_CHARS)")
    return value


# --- output ----------------------------------------------------------------------------------------

class TranscriptSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    tags = serializers.ListField(child=serializers.CharField())
    transcript_language = BlankAsNullCharField(help_text="BCP 47, or null when not given")
    turns = serializers.IntegerField(source="turn_count", help_text="turns (non-blank lines) of the normalized text")
    speakers = serializers.ListField(child=serializers.CharField(), help_text="in order of first appearance")
    tokens = serializers.IntegerField(help_text=f"counted with {TOKEN_COUNT_MODEL}'s tokenizer")
    created_at = serializers.DateTimeField()


class TranscriptListSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="the next (older) page, or null")
    previous = serializers.URLField(allow_null=True, help_text="the previous (newer) page, or null")
    results = TranscriptSerializer(many=True)


class SearchHitSerializer(serializers.Serializer):
    transcript = serializers.UUIDField(source="transcript_id", help_text="the transcript's id")
    title = serializers.CharField()
    turn = serializers.IntegerField(source="number", help_text="the turn's number, as citations name it")
    speaker = BlankAsNullCharField()
    start = serializers.FloatField(allow_null=True, help_text="seconds from the start, null without times")
    snippet = serializers.CharField(help_text="the turn around the matches, each match between ** and **")


class SearchResultsSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True, help_text="best first")
    next = serializers.URLField(allow_null=True, help_text="the next page, or null")
