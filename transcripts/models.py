"""Transcripts kept as a resource of their own: one row per owner and normalized text, parsed into turns that
PostgreSQL's full-text search indexes.

A turn is what citations point at (analysis/engine/turns.py numbers them: turn N is line N of the normalized
text), so search hits, jobs and asks all name the same turn by the same number.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import F, Func, lookups
from django.utils import timezone

# PostgreSQL's built-in text search configurations by the primary subtag of a BCP 47 tag. A language without
# one is searched with `simple` (lower-cased words, no stemming, no stop words), as is a transcript whose
# language is not given.
SEARCH_CONFIGS: dict[str, str] = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish", "nl": "dutch",
    "en": "english", "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian", "lt": "lithuanian", "ne": "nepali",
    "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish",
    "yi": "yiddish",
}
DEFAULT_SEARCH_CONFIG = "simple"
# The model whose tokenizer counts a transcript's `tokens`: an OpenAI model, so the count is exact (its
# encoding, offline) rather than one of the engine's upward estimates for other providers.
TOKEN_COUNT_PROVIDER, TOKEN_COUNT_MODEL = "openai", "gpt-4o"


def search_config(language: str) -> str:
    """The text search configuration of a transcript spoken in `language` (a BCP 47 tag, or "")."""
    return SEARCH_CONFIGS.get(language.split("-", 1)[0].lower(), DEFAULT_SEARCH_CONFIG)


class RegConfigField(models.CharField):
    """A text search configuration name in a PostgreSQL `regconfig` column.

    The generated search column calls to_tsvector(config, text), which is immutable (as a generated column
    requires) only when `config` is already a regconfig: a text column cast to regconfig is not.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 63)  # PostgreSQL's identifier length
        super().__init__(*args, **kwargs)

    def db_type(self, connection) -> str:
        return "regconfig"


@RegConfigField.register_lookup
class RegConfigExact(lookups.Exact):
    """`config = 'english'::regconfig`: regconfig has no `=` of its own, so without the cast PostgreSQL
    compares oids and cannot read 'english' as one."""

    def process_rhs(self, compiler, connection):
        sql, params = super().process_rhs(compiler, connection)
        return f"({sql})::regconfig", params


class Transcript(models.Model):
    """One meeting's transcript, stored once per owner: the same normalized text is the same row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column index on owner: the unique (owner, digest) and the (owner, occurred_at) index lead with it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="transcripts",
                              db_index=False)
    title = models.CharField(max_length=200, blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now)  # when the meeting took place
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # BCP 47: the language spoken (a job's `language` is the one its answers are written in).
    transcript_language = models.CharField(max_length=35, blank=True, default="")
    text = models.TextField()  # normalized: one turn a line (analysis/engine/transcripts.py)
    format = models.CharField(max_length=10, default="text")  # what it was sent as: text, srt, vtt, segments
    digest = models.CharField(max_length=64)  # sha256 of `text`: the key of reuse, with the owner
    turn_count = models.PositiveIntegerField(default=0)
    speakers = ArrayField(models.TextField(), default=list, blank=True)  # in order of first appearance
    tokens = models.PositiveIntegerField(default=0)  # TOKEN_COUNT_MODEL's count of `text`
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-occurred_at"], name="transcript_owner_occurred"),
            GinIndex(fields=["tags"], name="transcript_tags"),
            GinIndex(fields=["speakers"], name="transcript_speakers"),
        ]
        constraints = [models.UniqueConstraint(fields=["owner", "digest"], name="unique_transcript_per_owner")]

    def __str__(self) -> str:
        return self.title or f"Transcript of {self.occurred_at:%Y-%m-%d %H:%M}"

    @property
    def search_config(self) -> str:
        return search_config(self.transcript_language)


class OwnerSearchConfig(models.Model):
    """A text search configuration some of the owner's transcripts' turns are in: what a search parses its
    query in (one index arm each), read by primary key instead of from all the owner's transcripts.

    Written with the transcript that brings the configuration, in its transaction; dropped when the owner's
    last such transcript is deleted or changes language through transcripts.services (one deleted otherwise,
    from the admin, leaves the row: an arm that matches nothing costs an index probe, never a wrong hit).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                              db_index=False)
    config = RegConfigField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "config"], name="unique_search_config_per_owner")]

    def __str__(self) -> str:
        return str(self.config)


class TranscriptTurn(models.Model):
    """One turn of a transcript, as analysis/engine/turns.py parses it, with its search entry."""

    id = models.BigAutoField(primary_key=True)
    # Its index is the unique (transcript, number) one.
    transcript = models.ForeignKey(Transcript, on_delete=models.CASCADE, related_name="turns", db_index=False)
    # Its transcript's owner, copied: a search keeps the caller's matches as it reads them, where joining each
    # match to its transcript for the owner cost as much as ranking it. Transcripts never change owner.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    number = models.PositiveIntegerField()  # 1-based line of the normalized text: what citations name
    speaker = models.TextField(blank=True, default="")  # "" when the transcript does not say
    start = models.FloatField(null=True, blank=True)  # seconds from the start, where the source had times
    text = models.TextField()  # without the speaker and the time
    config = RegConfigField(default=DEFAULT_SEARCH_CONFIG)  # its transcript's search_config
    # Kept in the row (storage MAIN, migration 0004): ranking reads it for every match of a search.
    search = models.GeneratedField(
        expression=Func(F("config"), F("text"), function="to_tsvector", output_field=SearchVectorField()),
        output_field=SearchVectorField(), db_persist=True)

    class Meta:
        ordering = ["transcript_id", "number"]
        # Without a pending list (fastupdate off): turns are written once and searched often, and a pending
        # list is read in full by every search (and makes the planner shun the index) until a vacuum merges it.
        indexes = [GinIndex(fields=["search"], name="transcript_turn_search", fastupdate=False)]
        constraints = [models.UniqueConstraint(fields=["transcript", "number"], name="unique_turn_number")]

    def __str__(self) -> str:
        return f"T{self.number} {self.speaker}".strip()
