"""Reads on transcripts: one of the caller's, their list, and full-text search over their turns.

Search is PostgreSQL's: each turn has a stored generated tsvector in its transcript's text search
configuration, with a GIN index. A query is parsed once per configuration present among the caller's
transcripts and the matches are ORed, `(config = 'english' AND search @@ websearch_to_tsquery('english', q))
OR ...`, so each arm can use the index (a configuration read from the row could not).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from operator import or_

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Case, F, FloatField, Func, OuterRef, Q, QuerySet, Subquery, TextField, When
from django.db.models.functions import Cast

from accounts.models import User
from transcripts.models import OwnerSearchConfig, Transcript, TranscriptTurn

# A match in a snippet is between these; the rest of the turn is its plain text.
HIGHLIGHT = "**"
HEADLINE_OPTIONS = {"start_sel": HIGHLIGHT, "stop_sel": HIGHLIGHT, "max_words": 35, "min_words": 15}
# ts_headline parses the whole text it is given, and long turns run to thousands of characters for a snippet of
# 35 words: it is given this many characters around the query's first word instead (the whole turn when that
# window shows no match).
SNIPPET_WINDOW, SNIPPET_LEAD = 600, 200
# The first lexeme of a parsed query, as querytree() prints it ('social' & 'care'; a quote inside doubled).
FIRST_LEXEME = r"'((?:[^']|'')+)'"


class SnippetWindow(Func):
    """`text` cut to SNIPPET_WINDOW characters from SNIPPET_LEAD before the first place its lower-cased form
    holds the first lexeme of `query` (a stem, so usually the start of the word itself); from the start when
    it holds none. Texts that fit are whole."""

    output_field = TextField()

    def __init__(self, text, query: SearchQuery) -> None:
        super().__init__(text, query)

    def as_sql(self, compiler, connection, **extra_context):
        (text, text_params), (query, query_params) = (compiler.compile(e) for e in self.get_source_expressions())
        lexeme = f"replace(coalesce((regexp_match(querytree({query}), %s))[1], ''), '''''', '''')"
        sql = (f"CASE WHEN octet_length({text}) <= {SNIPPET_WINDOW} THEN {text} "
               f"ELSE substr({text}, greatest(1, strpos(lower({text}), {lexeme}) - {SNIPPET_LEAD}), "
               f"{SNIPPET_WINDOW}) END")
        return sql, (*text_params, *text_params, *text_params, *text_params, *query_params, FIRST_LEXEME)


def transcripts_visible_to(user: User) -> QuerySet[Transcript]:
    return Transcript.objects.filter(owner=user)


def transcript_for_user(*, user: User, transcript_id: uuid.UUID | str) -> Transcript | None:
    """The transcript if `user` owns it; None otherwise (the API answers 404, never 403)."""
    try:
        return transcripts_visible_to(user).filter(id=transcript_id).first()
    except (ValueError, ValidationError):  # not a UUID
        return None


def search_configs(user: User) -> list[str]:
    """The text search configurations of the user's transcripts' turns (each follows its transcript's language),
    kept per owner as transcripts are stored (models.OwnerSearchConfig)."""
    return sorted(OwnerSearchConfig.objects.filter(owner=user).values_list("config", flat=True))


def turn_match(*, q: str, configs: list[str]) -> Q:
    """Turns matching the web search query `q` (quoted phrases, OR, -word), one arm per configuration."""
    return reduce(or_, (Q(config=config, search=SearchQuery(q, config=config, search_type="websearch"))
                        for config in configs))


def turn_rank(*, q: str, configs: list[str]):
    """The cover density rank of a matching turn, with the query parsed once per configuration (a query parsed
    in each row's own configuration would be parsed again for every row)."""
    def rank(config: str) -> SearchRank:
        return SearchRank(F("search"), SearchQuery(q, config=config, search_type="websearch"), cover_density=True)

    if len(configs) == 1:
        return rank(configs[0])
    return Case(*(When(config=config, then=rank(config)) for config in configs), output_field=FloatField())


def transcripts_list(*, user: User, filters: dict) -> QuerySet[Transcript]:
    """The caller's transcripts for the list endpoint (without their text), filtered."""
    queryset = transcripts_visible_to(user).defer("text")
    if filters.get("tag"):
        queryset = queryset.filter(tags__contains=[filters["tag"]])
    if filters.get("speaker"):
        queryset = queryset.filter(speakers__contains=[filters["speaker"]])
    if filters.get("occurred_after"):
        queryset = queryset.filter(occurred_at__gte=filters["occurred_after"])
    if filters.get("occurred_before"):
        queryset = queryset.filter(occurred_at__lt=filters["occurred_before"])
    if filters.get("q"):
        configs = search_configs(user)
        if not configs:
            return queryset.none()
        matching = TranscriptTurn.objects.filter(turn_match(q=filters["q"], configs=configs)).values("transcript_id")
        queryset = queryset.filter(id__in=matching)
    return queryset


def tag_counts(*, limit: int = 50) -> list[tuple[str, int]]:
    """The most used tags over every transcript, with how many carry each (the admin's tag filter)."""
    # unnest has no ORM spelling; one GROUP BY in PostgreSQL.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tag, count(*) FROM {Transcript._meta.db_table}, unnest(tags) AS tag "
                       "GROUP BY tag ORDER BY count(*) DESC, tag LIMIT %s", [limit])
        return cursor.fetchall()


@dataclass(frozen=True)
class SearchPosition:
    """Where a page of hits ends: the last hit's rank and turn id (keyset pagination)."""

    rank: float
    turn_id: int


def turns_matching(*, user: User, q: str, transcript: uuid.UUID | None = None,
                   transcripts: list[uuid.UUID] | None = None, speaker: str | None = None,
                   tag: str | None = None, occurred_after: datetime | None = None,
                   occurred_before: datetime | None = None,
                   configs: list[str] | None = None) -> QuerySet[TranscriptTurn]:
    """The caller's turns matching the web search query `q`, filtered (unordered). `transcripts`: only these
    transcripts' turns (an ask's scope). `configs`: search_configs(user), when the caller has them already."""
    configs = search_configs(user) if configs is None else configs
    if not configs:
        return TranscriptTurn.objects.none()
    turns = TranscriptTurn.objects.filter(turn_match(q=q, configs=configs), owner=user)
    if transcript is not None:
        turns = turns.filter(transcript_id=transcript)
    if transcripts is not None:
        turns = turns.filter(transcript_id__in=transcripts)
    if speaker:
        turns = turns.filter(speaker=speaker)
    if tag:
        turns = turns.filter(transcript__tags__contains=[tag])
    if occurred_after:
        turns = turns.filter(transcript__occurred_at__gte=occurred_after)
    if occurred_before:
        turns = turns.filter(transcript__occurred_at__lt=occurred_before)
    return turns


def turns_search(*, user: User, q: str, after: SearchPosition | None = None, limit: int = 20, snippets: bool = True,
                 **filters) -> list[dict]:
    """The caller's turns matching `q` (turns_matching's filters), best first (cover density rank, then turn
    id), after `after`: dicts with id, transcript_id, title, number, speaker, start, rank and snippet; without
    `snippets`, only id, transcript_id, number and rank (an ask reads the turns themselves: a snippet, which
    parses the turn again, and the title would be work thrown away)."""
    configs = search_configs(user)
    # In double precision: ts_rank_cd's `real` reaches Python as the nearest short decimal, which compared
    # with the stored value in the next page's condition would skip or repeat hits of equal rank.
    rank = Cast(turn_rank(q=q, configs=configs), FloatField())
    turns = turns_matching(user=user, q=q, configs=configs, **filters).annotate(rank=rank)
    if after is not None:
        turns = turns.filter(Q(rank__lt=after.rank) | Q(rank=after.rank, id__gt=after.turn_id))
    turns = turns.order_by("-rank", "id")
    if not snippets:
        return list(turns.values("id", "transcript_id", "number", "rank")[:limit])
    # The snippet is computed for the page's rows only: PostgreSQL evaluates a costly output column such as
    # ts_headline (which parses each turn's text again) after the sort and the limit.
    query = SearchQuery(q, config=F("config"), search_type="websearch")
    snippet = SearchHeadline(SnippetWindow(F("text"), query), query, config=F("config"), **HEADLINE_OPTIONS)
    # The title by a subquery, not a join: like the snippet, it is then read for the page's rows only.
    title = Subquery(Transcript.objects.filter(id=OuterRef("transcript_id")).order_by().values("title"))
    hits = list(turns.values("id", "transcript_id", "number", "speaker", "start", "rank", title=title,
                             snippet=snippet)[:limit])
    missed = {hit["id"]: hit for hit in hits if HIGHLIGHT not in hit["snippet"]}
    if missed:
        whole = SearchHeadline("text", query, config=F("config"), **HEADLINE_OPTIONS)
        for turn_id, text in TranscriptTurn.objects.filter(id__in=missed).values_list("id", whole):
            missed[turn_id]["snippet"] = text
    return hits
