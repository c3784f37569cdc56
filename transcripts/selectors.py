"""Reads on transcripts: one of the caller's, their list, and full-text search over their turns.

Search is PostgreSQL's: each turn has a stored generated tsvector in its transcript's text search
configuration, with a GIN index. A query is parsed once per configuration present among the caller's
transcripts and the matches are ORed, `(config = 'english' AND search @@ websearch_to_tsquery('english', q))
OR ...`, so each arm can use the index (a configuration read from the row could not).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import or_

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    BooleanField, Case, CharField, DateTimeField, Expression, F, Field, FloatField, Func, IntegerField, OuterRef, Q,
    QuerySet, Subquery, TextField, UUIDField, Value, When,
)
from django.db.models.functions import Cast

from accounts.models import User
from transcripts.models import OwnerSearchConfig, Transcript, TranscriptTurn

# A match in a snippet is between these; the rest of the turn is its plain text.
HIGHLIGHT = "**"
HEADLINE_OPTIONS = {"start_sel": HIGHLIGHT, "stop_sel": HIGHLIGHT, "max_words": 35, "min_words": 15}
# ts_headline parses the whole text it is given, and long turns run to thousands of characters for a snippet of
# 35 words (about 200 characters): it is given this many characters around the query's first word instead (the
# whole turn when that window shows no match). Its cost is in proportion to the characters it parses.
SNIPPET_WINDOW, SNIPPET_LEAD = 240, 80
# The first lexeme of a parsed query, as querytree() prints it ('social' & 'care'; a quote inside doubled).
FIRST_LEXEME = r"'((?:[^']|'')+)'"
# A quoted phrase of a web search query.
QUOTED = re.compile(r'"([^"]+)"')


def snippet_anchor(q: str) -> str:
    """The words of a web search query as they would stand together in a turn, lower-cased: its first quoted
    phrase, else its words up to the first `or` or `-word`. Where a turn holds them so, its snippet shows them
    together: the query's first word alone may first stand far from the rest, in a window without a match."""
    quoted = QUOTED.search(q)
    if quoted:
        return " ".join(quoted.group(1).split()).lower()
    words = []
    for word in q.replace('"', " ").split():
        if word.lower() == "or" or word.startswith("-"):
            break
        words.append(word)
    return " ".join(words).lower()


class SnippetWindow(Func):
    """`text` cut to SNIPPET_WINDOW characters from SNIPPET_LEAD before the first place it holds `anchor`
    (snippet_anchor) or else the start of the first lexeme of `query` (the lexeme less its last letter: a stem such
    as 'energi' ends otherwise than its word), each as written and then lower-cased; from the start when it holds
    neither. Texts that fit are whole."""

    output_field = TextField()

    def __init__(self, text, query: SearchQuery, anchor) -> None:
        super().__init__(text, query, anchor)

    def as_sql(self, compiler, connection, **extra_context):
        (text, text_params), (query, query_params), (anchor, anchor_params) = (
            compiler.compile(e) for e in self.get_source_expressions())
        lexeme = f"replace(coalesce((regexp_match(querytree({query}), %s))[1], ''), '''''', '''')"
        start = f"left({lexeme}, greatest(4, length({lexeme}) - 1))"
        start_params = (*query_params, FIRST_LEXEME, *query_params, FIRST_LEXEME)
        anchor = f"nullif({anchor}, '')"
        # lower() of a long turn costs more than the rest of its snippet: the text as it is is looked in first.
        found = (f"coalesce(nullif(strpos({text}, {anchor}), 0), nullif(strpos({text}, {start}), 0), "
                 f"nullif(strpos(lower({text}), {anchor}), 0), strpos(lower({text}), {start}))")
        found_params = (*text_params, *anchor_params, *text_params, *start_params, *text_params, *anchor_params,
                        *text_params, *start_params)
        sql = (f"CASE WHEN octet_length({text}) <= {SNIPPET_WINDOW} THEN {text} "
               f"ELSE substr({text}, greatest(1, {found} - {SNIPPET_LEAD}), {SNIPPET_WINDOW}) END")
        return sql, (*text_params, *text_params, *text_params, *found_params)


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
    # Read on every search: a statement of its own costs a third of what the ORM takes to build it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT config FROM {OwnerSearchConfig._meta.db_table} WHERE owner_id = %s "
                       "ORDER BY config::text", [user.pk])
        return [config for (config,) in cursor.fetchall()]


def turn_match(*, q: str | Expression, configs: list[str]) -> Q:
    """Turns matching the web search query `q` (quoted phrases, OR, -word), one arm per configuration."""
    return reduce(or_, (Q(config=config, search=SearchQuery(q, config=config, search_type="websearch"))
                        for config in configs))


def turn_rank(*, q: str | Expression, configs: list[str]):
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


class InArray(Func):
    """`expression = ANY(array)`: membership of an array passed as one value, however long."""

    template, arg_joiner = "%(expressions)s)", " = ANY("
    output_field = BooleanField()


# The filters of a search, by name: how each narrows the turns, given its value as an expression.
SEARCH_FILTERS: dict[str, tuple[Field, Callable[[Expression], Q]]] = {
    "transcript": (UUIDField(), lambda value: Q(transcript_id=value)),
    "transcripts": (ArrayField(UUIDField()), lambda value: Q(InArray(F("transcript_id"), value))),
    "speaker": (CharField(), lambda value: Q(speaker=value)),
    "tag": (ArrayField(CharField()), lambda value: Q(transcript__tags__contains=value)),
    "occurred_after": (DateTimeField(), lambda value: Q(transcript__occurred_at__gte=value)),
    "occurred_before": (DateTimeField(), lambda value: Q(transcript__occurred_at__lt=value)),
}


def _search_values(*, user: User, q: str, filters: dict) -> dict:
    """A search's values by name (SEARCH_FILTERS's and the query's): the filters given, in the form their
    expressions take."""
    unknown = set(filters) - set(SEARCH_FILTERS)
    if unknown:
        raise TypeError(f"unknown search filters: {', '.join(sorted(unknown))}")
    values = {"q": q, "owner": user.pk, "anchor": snippet_anchor(q)}
    for name, value in filters.items():
        if name == "transcripts" and value is not None:
            values[name] = list(value)
        elif name == "tag" and value:
            values[name] = [value]
        elif value is not None and value != "":
            values[name] = value
    return values


def _turns_filtered(*, configs: list[str], names: Iterable[str], value: Callable[[str, Field], Expression],
                    ) -> QuerySet[TranscriptTurn]:
    """The turns matching the query, of the owner, narrowed by the filters `names`; each value is
    `value(name, field)`: the value itself (turns_matching), or its place in a statement (turns_search)."""
    turns = TranscriptTurn.objects.filter(turn_match(q=value("q", TextField()), configs=configs),
                                          owner_id=value("owner", IntegerField()))
    for name in sorted(names):
        if name in SEARCH_FILTERS:
            field, narrow = SEARCH_FILTERS[name]
            turns = turns.filter(narrow(value(name, field)))
    return turns


def turns_matching(*, user: User, q: str, configs: list[str] | None = None, **filters) -> QuerySet[TranscriptTurn]:
    """The caller's turns matching the web search query `q`, filtered (unordered): `transcript`, `transcripts`
    (only these transcripts' turns: an ask's scope), `speaker`, `tag`, `occurred_after`, `occurred_before`.
    `configs`: search_configs(user), when the caller has them already."""
    configs = search_configs(user) if configs is None else configs
    if not configs:
        return TranscriptTurn.objects.none()
    values = _search_values(user=user, q=q, filters=filters)
    return _turns_filtered(configs=configs, names=values,
                           value=lambda name, field: Value(values[name], output_field=field))


class SearchValue(Expression):
    """One value of a search in the statement compiled for its shape (_search_statement): `%s`, with this
    expression standing in the statement's parameters until each search puts its own value there."""

    def __init__(self, name: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", [self]


@dataclass(frozen=True)
class SearchShape:
    """What a search's statement depends on, apart from its values."""

    configs: tuple[str, ...]
    filters: frozenset[str]
    after: bool
    snippets: bool
    limit: int


@lru_cache(maxsize=512)
def _search_statement(shape: SearchShape) -> tuple[str, tuple]:
    """The SQL of every search of this shape and its parameters, SearchValues where each search's own go.
    Compiled once per shape: building and compiling these expressions through the ORM costs a search more
    Python than everything else it does."""
    q = SearchValue("q", TextField())
    # In double precision: ts_rank_cd's `real` reaches Python as the nearest short decimal, which compared
    # with the stored value in the next page's condition would skip or repeat hits of equal rank.
    rank = Cast(turn_rank(q=q, configs=list(shape.configs)), FloatField())
    turns = _turns_filtered(configs=list(shape.configs), names=shape.filters, value=SearchValue).annotate(rank=rank)
    if shape.after:
        after_rank, after_id = SearchValue("after_rank", FloatField()), SearchValue("after_id", IntegerField())
        turns = turns.filter(Q(rank__lt=after_rank) | Q(rank=after_rank, id__gt=after_id))
    turns = turns.order_by("-rank", "id")
    if not shape.snippets:
        turns = turns.values("id", "transcript_id", "number", "rank")
    else:
        # The snippet is computed for the page's rows only: PostgreSQL evaluates a costly output column such as
        # ts_headline (which parses each turn's text again) after the sort and the limit.
        # In the one configuration of most owners: a query parsed in a constant configuration is parsed once, as
        # the statement is planned, where one parsed in each row's configuration is parsed again for every row.
        config = Value(shape.configs[0]) if len(shape.configs) == 1 else F("config")
        query = SearchQuery(q, config=config, search_type="websearch")
        window = SnippetWindow(F("text"), query, SearchValue("anchor", TextField()))
        snippet = SearchHeadline(window, query, config=config, **HEADLINE_OPTIONS)
        # The title by a subquery, not a join: like the snippet, it is then read for the page's rows only.
        title = Subquery(Transcript.objects.filter(id=OuterRef("transcript_id")).order_by().values("title"))
        turns = turns.values("id", "transcript_id", "number", "speaker", "start", "rank", title=title,
                             snippet=snippet)
    sql, params = turns[:shape.limit].query.get_compiler(connection=connection).as_sql()
    return sql, tuple(params)


def turns_search(*, user: User, q: str, after: SearchPosition | None = None, limit: int = 20, snippets: bool = True,
                 **filters) -> list[dict]:
    """The caller's turns matching `q` (turns_matching's filters), best first (cover density rank, then turn
    id), after `after`: dicts with id, transcript_id, title, number, speaker, start, rank and snippet; without
    `snippets`, only id, transcript_id, number and rank (an ask reads the turns themselves: a snippet, which
    parses the turn again, and the title would be work thrown away)."""
    configs = search_configs(user)
    if not configs:
        return []
    values = _search_values(user=user, q=q, filters=filters)
    if after is not None:
        values.update(after_rank=after.rank, after_id=after.turn_id)
    shape = SearchShape(configs=tuple(configs), filters=frozenset(values) & set(SEARCH_FILTERS),
                        after=after is not None, snippets=snippets, limit=limit)
    sql, params = _search_statement(shape)
    with connection.cursor() as cursor:
        cursor.execute(sql, [values[param.name] if isinstance(param, SearchValue) else param for param in params])
        columns = [column.name for column in cursor.description]
        hits = [dict(zip(columns, row)) for row in cursor.fetchall()]
    if not snippets:
        return hits
    missed = {hit["id"]: hit for hit in hits if HIGHLIGHT not in hit["snippet"]}
    if missed:
        query = SearchQuery(q, config=F("config"), search_type="websearch")
        whole = SearchHeadline("text", query, config=F("config"), **HEADLINE_OPTIONS)
        for turn_id, text in TranscriptTurn.objects.filter(id__in=missed).values_list("id", whole):
            missed[turn_id]["snippet"] = text
    return hits
