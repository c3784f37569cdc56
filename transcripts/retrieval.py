"""Reads for a question asked across meetings (analysis/engine/ask.py): the scope of an owner's transcripts, read
whole or searched.

A search is the transcripts' full-text search (selectors.turns_search: PostgreSQL, the GIN index, ranked by
cover density) for the question's words or the model's search terms, any of them; the hits are taken best
first, each with ASK_NEIGHBOUR_TURNS turns either side, until they weigh ASK_READ_TOKENS in the model's tokens
or the hits run out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Length

from accounts.models import User
from analysis.engine.ask import AskTurn, Meeting
from transcripts.models import Transcript, TranscriptTurn
from transcripts.selectors import SearchPosition, turns_search

T = TypeVar("T")

# Hits read from the search at a time (each page is one ranked query, continued by keyset).
HITS_PER_PAGE = 50
# Words of the question shorter than this are left out of its search (articles, "is", "of": noise in any language).
MIN_WORD_CHARS = 3
_WORD = re.compile(r"\w+")
# What the web search syntax would read as an operator inside a term.
_OPERATORS = re.compile(r'["()]|(?:^|\s)-|\bOR\b')


def search_query(question: str, terms: Iterable[str]) -> str:
    """A web search query (selectors.turn_match) matching a turn with any word of the question or any term: a
    term of several words as a phrase and as its words."""
    parts: list[str] = []
    for term in terms:
        term = " ".join(_OPERATORS.sub(" ", term).split())
        words = [w for w in _WORD.findall(term) if len(w) >= MIN_WORD_CHARS]
        if len(term.split()) > 1:
            parts.append(f'"{term}"')
        parts += words
    parts += [w for w in _WORD.findall(question) if len(w) >= MIN_WORD_CHARS]
    unique = dict.fromkeys(part.casefold() if not part.startswith('"') else part for part in parts)
    return " OR ".join(unique)


def _direct(fn: Callable[[], T]) -> T:
    return fn()


@dataclass
class TranscriptScope:
    """The transcripts an ask job is asked over (analysis.engine.ask.AskScope). Every read goes through `run`
    (the worker's database pool: jobs.worker.runs), so it happens where the caller's reads happen."""

    owner: User
    transcript_ids: list[uuid.UUID]
    run: Callable[[Callable[[], object]], object] = _direct
    read_tokens: int = field(default_factory=lambda: settings.ASK_READ_TOKENS)
    neighbours: int = field(default_factory=lambda: settings.ASK_NEIGHBOUR_TURNS)
    # Filled by `measure`: the transcripts still there, by date; their text's size; their languages.
    meetings: list[dict] = field(default_factory=list)
    chars: int = 0
    languages: tuple[str, ...] = ()

    def measure(self) -> TranscriptScope:
        """Read what the scope holds now (a transcript deleted since the job was submitted is left out)."""
        # The text's length, not its turns': one row a meeting, and every turn's text is in it (the engine's
        # quick check needs a lower bound of what reading it whole weighs).
        rows = self.run(lambda: list(
            Transcript.objects.filter(owner=self.owner, id__in=self.transcript_ids)
            .order_by("occurred_at", "id").values("id", "title", "occurred_at", "transcript_language",
                                                  chars=Length("text"))))
        self.meetings = rows
        self.languages = tuple(dict.fromkeys(row["transcript_language"] for row in rows if row["transcript_language"]))
        self.chars = sum(row["chars"] for row in rows)
        return self

    @property
    def ids(self) -> list[uuid.UUID]:
        return [row["id"] for row in self.meetings]

    def whole(self) -> list[Meeting]:
        turns = self.run(lambda: list(TranscriptTurn.objects.filter(transcript_id__in=self.ids)
                                      .order_by("transcript_id", "number")
                                      .values_list("transcript_id", "number", "speaker", "start", "text")))
        return self._meetings(turns)

    def search(self, *, question: str, terms: list[str], count: Callable[[str], int]) -> list[Meeting]:
        """The turns found for the question and the terms, best hit first, each with its neighbours, until they
        weigh `read_tokens` (counted with `count`, the model's tokens) or the hits run out."""
        query = search_query(question, terms)
        if not query or not self.meetings:
            return []
        read: dict[tuple[uuid.UUID, int], tuple] = {}
        tokens, after = 0, None
        while tokens < self.read_tokens:
            hits = self.run(lambda after=after: turns_search(user=self.owner, q=query, transcripts=self.ids,
                                                             after=after, limit=HITS_PER_PAGE))
            if not hits:
                break
            after = SearchPosition(rank=hits[-1]["rank"], turn_id=hits[-1]["id"])
            windows = self._windows(hits, read)
            for hit in hits:
                for row in windows.get((hit["transcript_id"], hit["number"]), []):
                    key = (row[0], row[1])
                    if key in read:
                        continue
                    cost = count(AskTurn(turn=row[1], speaker=row[2] or None, start=row[3], text=row[4]).line) + 1
                    if tokens + cost > self.read_tokens:
                        return self._meetings(sorted(read.values(), key=lambda r: (str(r[0]), r[1])))
                    read[key] = row
                    tokens += cost
            if len(hits) < HITS_PER_PAGE:
                break
        return self._meetings(sorted(read.values(), key=lambda r: (str(r[0]), r[1])))

    def _windows(self, hits: list[dict], read: dict) -> dict[tuple[uuid.UUID, int], list[tuple]]:
        """Each hit's turns with its neighbours, in turn order (one query for a page of hits)."""
        spans = [(hit["transcript_id"], max(1, hit["number"] - self.neighbours), hit["number"] + self.neighbours)
                 for hit in hits if (hit["transcript_id"], hit["number"]) not in read]
        if not spans:
            return {}
        wanted = Q()
        for transcript_id, first, last in spans:
            wanted |= Q(transcript_id=transcript_id, number__gte=first, number__lte=last)
        rows = self.run(lambda: list(TranscriptTurn.objects.filter(wanted).order_by("transcript_id", "number")
                                     .values_list("transcript_id", "number", "speaker", "start", "text")))
        windows: dict[tuple[uuid.UUID, int], list[tuple]] = {}
        for hit in hits:
            key = (hit["transcript_id"], hit["number"])
            # The hit itself first: it is what the search found, its neighbours only its context.
            around = [r for r in rows if r[0] == key[0] and abs(r[1] - key[1]) <= self.neighbours]
            windows[key] = sorted(around, key=lambda r: (r[1] != key[1], abs(r[1] - key[1]), r[1]))
        return windows

    def _meetings(self, turns: Iterable[tuple]) -> list[Meeting]:
        by_transcript: dict[uuid.UUID, list[AskTurn]] = {}
        for transcript_id, number, speaker, start, text in turns:
            by_transcript.setdefault(transcript_id, []).append(
                AskTurn(turn=number, speaker=speaker or None, start=start, text=text))
        return [Meeting(transcript=str(row["id"]), title=row["title"], occurred_at=row["occurred_at"].isoformat(),
                        turns=tuple(sorted(by_transcript[row["id"]], key=lambda t: t.turn)))
                for row in self.meetings if row["id"] in by_transcript]


def transcript_scope(*, owner: User, transcript_ids: list[uuid.UUID | str],
                     run: Callable[[Callable[[], object]], object] = _direct) -> TranscriptScope:
    """The scope of these transcripts of `owner`, measured."""
    return TranscriptScope(owner=owner, transcript_ids=[uuid.UUID(str(i)) for i in transcript_ids], run=run).measure()
