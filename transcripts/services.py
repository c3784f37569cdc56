"""Writes on transcripts: store (or find again) a transcript with its turns, change it, delete it.

`transcripts` knows nothing of jobs: a job points at its transcript (jobs.models.Job.transcript_ref), and what
a job does when its transcript is deleted is declared there, on that foreign key.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.core.files import File
from django.db import IntegrityError, connection, models, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import User
from analysis.engine.tokens import count_tokens
from analysis.engine.turns import ParsedTurn, parse_turns
from scriptripper.errors import Conflict, NotFoundError
from transcripts.inputs import read_transcript
from transcripts.models import (TOKEN_COUNT_MODEL, TOKEN_COUNT_PROVIDER, OwnerSearchConfig, Transcript,
                                TranscriptTurn, search_config)

logger = logging.getLogger(__name__)

UNSET = object()


def transcript_digest(text: str) -> str:
    """The key of reuse: the same owner's same normalized text is the same transcript."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ParsedTranscript:
    """What a normalized text's row holds besides what the client says of it (title, date, tags, language)."""

    digest: str
    turns: list[ParsedTurn]
    speakers: list[str]
    tokens: int

    @classmethod
    def of(cls, text: str) -> ParsedTranscript:
        turns = parse_turns(text)
        return cls(digest=transcript_digest(text), turns=turns,
                   speakers=list(dict.fromkeys(turn.speaker for turn in turns if turn.speaker)),
                   tokens=count_tokens(text, provider=TOKEN_COUNT_PROVIDER, model=TOKEN_COUNT_MODEL))

    def insert_turns(self, *, model: type[models.Model], transcript_id: uuid.UUID, owner_id: int,
                     config: str) -> None:
        """Its turns as rows of `model` (TranscriptTurn, or its historical model in a migration), in one
        INSERT of unnested arrays: PostgreSQL computes each row's search column as it inserts it. The owner
        is written where the model has the column (a historical model from before transcripts 0003 has not)."""
        if not self.turns:
            return
        table = connection.ops.quote_name(model._meta.db_table)
        owned = any(field.name == "owner" for field in model._meta.concrete_fields)
        owner_column, owner_value = (", owner_id", ", %s") if owned else ("", "")
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (transcript_id{owner_column}, number, speaker, start, text, config) "
                f"SELECT %s{owner_value}, number, speaker, start, text, %s::regconfig "
                "FROM unnest(%s::integer[], %s::text[], %s::double precision[], %s::text[]) "
                "AS turn(number, speaker, start, text)",
                [transcript_id, *([owner_id] if owned else []), config,
                 [turn.index for turn in self.turns],
                 [turn.speaker or "" for turn in self.turns], [turn.start for turn in self.turns],
                 [turn.text for turn in self.turns]])


def transcript_create(*, owner: User, transcript: str | None = None, format: str | None = None,
                      segments: list | None = None, file: File | None = None, title: str = "",
                      occurred_at: datetime | None = None, tags: Iterable[str] = (),
                      transcript_language: str = "") -> tuple[Transcript, bool]:
    """POST /api/v1/transcripts: the transcript read from whichever shape it came in, then stored
    (transcript_store). Returns (transcript, created)."""
    text, fmt = read_transcript(text=transcript, segments=segments, upload=file, fmt=format)
    return transcript_store(owner=owner, text=text, fmt=fmt, title=title, occurred_at=occurred_at, tags=tags,
                            transcript_language=transcript_language)


def transcript_store(*, owner: User, text: str, fmt: str, title: str = "", occurred_at: datetime | None = None,
                     tags: Iterable[str] = (), transcript_language: str = "") -> tuple[Transcript, bool]:
    """The owner's transcript of this normalized text: the one already stored (created False; its title,
    date, tags and language unchanged), or a new row with its turns (created True).

    The row is locked against deletion until the caller's transaction ends, so a job created in the same
    transaction cannot point at a transcript deleted meanwhile.
    """
    digest = transcript_digest(text)
    # No savepoint of its own: within the caller's transaction (a job's) it would cost two round trips for
    # nothing, the creation below having one.
    with transaction.atomic(savepoint=False):
        existing = _held(owner_id=owner.pk, digest=digest)
        if existing is not None:
            return existing, False
        parsed = ParsedTranscript.of(text)
        try:
            with transaction.atomic():
                stored = Transcript.objects.create(
                    owner=owner, title=title, occurred_at=occurred_at or timezone.now(), tags=list(tags),
                    transcript_language=transcript_language, text=text, format=fmt, digest=digest,
                    turn_count=len(parsed.turns), speakers=parsed.speakers, tokens=parsed.tokens)
                parsed.insert_turns(model=TranscriptTurn, transcript_id=stored.id, owner_id=owner.pk,
                                    config=stored.search_config)
                _search_config_add(owner_id=owner.pk, config=stored.search_config)
        except IntegrityError:
            # A concurrent request stored the same text first (the unique (owner, digest) constraint).
            existing = _held(owner_id=owner.pk, digest=digest)
            if existing is None:
                raise
            return existing, False
    logger.info("transcript stored", extra={"transcript_id": str(stored.id), "turns": len(parsed.turns)})
    return stored, True


def _search_config_add(*, owner_id: int, config: str) -> None:
    """Searches of the owner's turns parse the query in `config` too (selectors.search_configs). The row is
    written even when it exists, so that it stays locked until this transaction ends: a prune running
    meanwhile waits, then sees the transcript that needs it."""
    OwnerSearchConfig.objects.bulk_create([OwnerSearchConfig(owner_id=owner_id, config=config)],
                                          update_conflicts=True, unique_fields=["owner", "config"],
                                          update_fields=["config"])


def _search_config_prune(*, owner_id: int, config: str) -> None:
    """Drop the owner's `config` when none of their transcripts is in it any more (one was deleted or changed
    language): each configuration a search parses its query in costs an index probe. Call in a transaction."""
    # Locked first, then the transcripts read in a statement of their own: one stored meanwhile in this
    # configuration holds the row until it commits (_search_config_add), and is then seen.
    if not OwnerSearchConfig.objects.select_for_update().filter(owner_id=owner_id, config=config).exists():
        return
    languages = Transcript.objects.filter(owner_id=owner_id).order_by().values_list("transcript_language",
                                                                                    flat=True).distinct()
    if all(search_config(language) != config for language in languages):
        OwnerSearchConfig.objects.filter(owner_id=owner_id, config=config).delete()


def _held(**where) -> Transcript | None:
    """The transcript whose columns have these values (without its text), held with FOR KEY SHARE until the
    transaction ends: a deletion (FOR UPDATE) waits for it, while jobs created for the same transcript at once,
    each holding it so, do not wait for one another. Django's select_for_update has no KEY SHARE."""
    columns = ", ".join(connection.ops.quote_name(field.column) for field in Transcript._meta.concrete_fields
                        if field.name != "text")
    conditions = " AND ".join(f"{connection.ops.quote_name(column)} = %s" for column in where)
    rows = Transcript.objects.raw(f"SELECT {columns} FROM {connection.ops.quote_name(Transcript._meta.db_table)} "
                                  f"WHERE {conditions} FOR KEY SHARE", list(where.values()))
    return next(iter(rows), None)


def transcript_hold(*, owner: User, transcript_id: uuid.UUID | str) -> Transcript | None:
    """The owner's transcript, locked against deletion until the caller's transaction ends (a job being
    created for it); None if there is none (not theirs, deleted, or not an id). Call inside a transaction."""
    try:
        transcript_id = uuid.UUID(str(transcript_id))
    except ValueError:
        return None
    return _held(owner_id=owner.pk, id=transcript_id)


def transcript_update(*, transcript: Transcript, title: str | object = UNSET, occurred_at: datetime | object = UNSET,
                      tags: Iterable[str] | object = UNSET, transcript_language: str | object = UNSET) -> Transcript:
    """PATCH: the fields given. A new language moves every turn to its text search configuration (PostgreSQL
    recomputes the generated search column of each)."""
    changes = {name: value for name, value in (("title", title), ("occurred_at", occurred_at), ("tags", tags),
                                               ("transcript_language", transcript_language)) if value is not UNSET}
    if "tags" in changes:
        changes["tags"] = list(changes["tags"])
    with transaction.atomic():
        locked = Transcript.objects.select_for_update(no_key=True).filter(id=transcript.id).first()
        if locked is None:
            raise NotFoundError("No such transcript.")  # deleted by a concurrent request
        old_config = locked.search_config
        for name, value in changes.items():
            setattr(locked, name, value)
        if changes:
            locked.save(update_fields=list(changes))
        if locked.search_config != old_config:
            TranscriptTurn.objects.filter(transcript=locked).update(config=locked.search_config)
            _search_config_add(owner_id=locked.owner_id, config=locked.search_config)
            _search_config_prune(owner_id=locked.owner_id, config=old_config)
    return locked


def transcript_delete(*, transcript: Transcript) -> None:
    """Delete a transcript with its turns and search entries. Jobs that analyzed it keep their results and
    lose their copy of the text (jobs.models.Job.transcript_ref says how); while one of them is queued or
    running the transcript cannot be deleted (Conflict): it would run on a text that is gone."""
    with transaction.atomic():
        locked = Transcript.objects.select_for_update().filter(id=transcript.id).first()
        if locked is None:
            raise NotFoundError("No such transcript.")
        try:
            locked.delete()
            _search_config_prune(owner_id=locked.owner_id, config=locked.search_config)
        except ProtectedError as exc:
            ids = sorted(str(obj.pk) for obj in exc.protected_objects)
            raise Conflict(f"{len(ids)} job(s) queued or running use this transcript ({', '.join(ids[:5])}"
                           f"{', ...' if len(ids) > 5 else ''}): cancel them (POST /api/v1/jobs/{{id}}/cancel) "
                           "or wait until they end, then delete it.") from None
    logger.info("transcript deleted", extra={"transcript_id": str(transcript.id)})
