"""Reads for a question asked across meetings (analysis/engine/ask.py): the scope of an owner's transcripts, read
whole or searched.

A search is the transcripts' full-text search (selectors.turns_search: PostgreSQL, the GIN index, ranked by
cover density) for each word of the question and each of the model's search terms; their hits are taken in
turn, best first, each with ASK_NEIGHBOUR_TURNS turns either side, until they weigh ASK_READ_TOKENS in the
model's tokens or the hits run out.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator
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

# Hits read from one search at a time (each page is one ranked query, continued by keyset), and hits whose
# neighbours are read at a time (one query).
HITS_PER_PAGE = 20
HITS_PER_BATCH = 50
# Words of the question shorter than this are left out of its search (articles, "is", "of": noise in any language).
MIN_WORD_CHARS = 3
_WORD = re.compile(r"\w+")
# What the web search syntax would read as an operator inside a term.
_OPERATORS = re.compile(r'["()]|(?:^|\s)-|\bOR\b')


def search_query(words: Iterable[str]) -> str:
    """A web search query (selectors.turn_match) matching a turn with any of these words or phrases: a phrase as
    a phrase and as its words, every word of at least MIN_WORD_CHARS characters; "" when none is left."""
    parts: list[str] = []
    for text in words:
        text = " ".join(_OPERATORS.sub(" ", text).split())
        found = [w.casefold() for w in _WORD.findall(text) if len(w) >= MIN_WORD_CHARS]
        if len(found) > 1:
            parts.append(f'"{text}"')
        parts += found
    return " OR ".join(dict.fromkeys(parts))


def _interleaved(streams: list[Iterator[dict]]) -> Iterator[dict]:
    """One hit of each stream in turn, until all are spent."""
    while streams:
        for stream in list(streams):
            hit = next(stream, None)
            if hit is None:
                streams.remove(stream)
            else:
                yield hit


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
        """The turns found for the question and for the terms, best hits first, each with its neighbours, until
        they weigh `read_tokens` (counted with `count`, the model's tokens) or the hits run out.

        Each word of the question and each term is a search of its own, and their hits are taken in turn:
        PostgreSQL ranks by how many of a query's words a turn holds and how close, not by how rare they are, so
        in one query of them all the common words ("remote", "control") would outrank the turns that hold the
        rare word that answers (a stop word of the transcript's language matches nothing)."""
        queries = list(dict.fromkeys(query for query in map(search_query, [[w] for w in _WORD.findall(question)]
                                                                          + [[term] for term in terms]) if query))
        if not queries or not self.meetings:
            return []
        read: dict[tuple[uuid.UUID, int], tuple] = {}
        tokens = 0
        hits = _interleaved([self._hits(query) for query in queries])
        while tokens < self.read_tokens:
            batch = [hit for _, hit in zip(range(HITS_PER_BATCH), hits)]
            if not batch:
                break
            windows = self._windows(batch, read)
            for hit in batch:
                for row in windows.get((hit["transcript_id"], hit["number"]), []):
                    if (row[0], row[1]) in read:
                        continue
                    cost = count(AskTurn(turn=row[1], speaker=row[2] or None, start=row[3], text=row[4]).line) + 1
                    if tokens + cost > self.read_tokens:
                        return self._meetings(read.values())
                    read[(row[0], row[1])] = row
                    tokens += cost
        return self._meetings(read.values())

    def _hits(self, query: str) -> Iterator[dict]:
        """The scope's turns matching `query`, best first, a page at a time (keyset pagination)."""
        after = None
        while True:
            page = self.run(lambda after=after: turns_search(user=self.owner, q=query, transcripts=self.ids,
                                                             after=after, limit=HITS_PER_PAGE, snippets=False))
            yield from page
            if len(page) < HITS_PER_PAGE:
                return
            after = SearchPosition(rank=page[-1]["rank"], turn_id=page[-1]["id"])

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
