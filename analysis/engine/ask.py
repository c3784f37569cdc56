"""One question asked across many meetings, answered with citations checked in every meeting.

Pure analysis: no Django. The caller hands in the question (a cited text task across meetings: a
`structured.TaskRequest` with `across`) and its scope, an `AskScope`: the scope's size, all of its turns, and a
search over them (the caller's full-text search). The answer:

1. What is read. A scope that fits one request is read whole. Otherwise one short call asks the model for
   search terms for the question (a call of the task, billed with it), and the scope's search gives the turns
   that match the question or those terms, each with its neighbouring turns.
2. How it is shown. Meetings are named M1, M2, ... in the order the scope gives them, and every turn is
   marked by meeting and turn, `[M3 T12]`: the model cites `{"transcript": "M3", "turn": 12, "quote"}`.
3. How it is asked. Meetings that fit one request are asked in one call. Otherwise map-reduce over
   meetings: each map request holds as many whole meetings as fit (a meeting too long for one request is cut
   between turns, each piece under its meeting's header), and the partial answers, with their citations, are
   merged level by level within the context, as the Runner's map-reduce does for one transcript. No request
   over the context is planned, and Runner.call refuses one anyway.
4. What is kept. The final answer is validated (one repair call) and its citations are checked against each
   meeting's turns exactly as a single transcript's are (structured.finish, citations.check_across); false
   ones are removed and counted. The stored output names the meetings by their transcript ids, and says what
   was read (`consulted`: how, the search terms, each meeting's turn ranges).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Protocol

from analysis.engine import prompts, structured
from analysis.engine.chunking import pack, split_transcript
from analysis.engine.citations import CitationReport
from analysis.engine.estimate import Estimate, TaskEstimate, priced, reduce_calls
from analysis.engine.planning import RunConfig, TaskSpec, group_partials, output_limit, prompt_tokens
from analysis.engine.providers.base import CONTEXT_LENGTH, Prompt, ProviderError
from analysis.engine.runner import Runner, TaskOutcome, TaskState
from analysis.engine.schemas import strict_compatible
from analysis.engine.tokens import context_tokens, count_tokens
from analysis.engine.transcript_lines import Turn
from analysis.engine.transcripts import render_turns

# How a meeting's turns are read: all of them, or what the search found.
READ_WHOLE = "whole"
READ_SEARCH = "search"

# The short call for search terms: at most this many terms, of at most this many characters, in an answer
# of at most this many tokens (a reasoning model gets the run's output limit: its thinking counts in it).
MAX_SEARCH_TERMS = 12
MAX_TERM_CHARS = 60
SEARCH_TERMS_MAX_OUTPUT = 300
SEARCH_TERMS_SCHEMA: dict = {
    "type": "object",
    "properties": {"terms": {"type": "array", "items": {"type": "string"}, "description": (
        "words and short phrases that would occur in the passages answering the question")}},
    "required": ["terms"],
    "additionalProperties": False,
}
SEARCH_TERMS_INSTRUCTION = (
    "Task: The question above will be answered from meeting transcripts found by a full-text search. List up to "
    f"{MAX_SEARCH_TERMS} search terms (single words or short phrases) that the turns answering it are likely to "
    "contain and that the question itself does not: synonyms, related terms, names, the words people use when "
    "they talk about it.{languages} Answer with JSON: {{\"terms\": [...]}}."
)

# Between two turns that are not consecutive in their meeting (a search read only some of them).
GAP_LINE = "[…]"
# The blank line between two meetings of one request.
_JOIN_TOKENS = 2


@dataclass(frozen=True)
class AskTurn:
    turn: int  # its number in its transcript (its line: analysis/engine/turns.py)
    speaker: str | None
    start: float | None  # seconds from the start of the recording, where known
    text: str

    @property
    def line(self) -> str:
        """The turn as the stored transcript writes it, "[hh:mm:ss] Speaker: text": what its citations are
        checked against, as for a single transcript."""
        return render_turns([Turn(self.speaker, self.start, self.text)])


@dataclass(frozen=True)
class Meeting:
    transcript: int | str  # the transcript's id, as its citations will name it
    title: str
    occurred_at: str  # ISO 8601
    turns: tuple[AskTurn, ...]  # in turn order: all of them, or what a search read


class AskScope(Protocol):
    """The meetings a question is asked over, as the caller reads them (jobs' worker: PostgreSQL)."""

    chars: int  # characters of all the scope's turn texts (or more): a lower bound of what reading it whole weighs
    languages: Sequence[str]  # BCP 47 tags of the meetings' languages, where known
    read_tokens: int  # the most tokens of turns `search` reads (its bound, which the estimate prices)

    def whole(self) -> list[Meeting]:
        """Every meeting of the scope with every turn, in the order they are to be named (by date)."""
        ...

    def search(self, *, question: str, terms: list[str], count: Callable[[str], int]) -> list[Meeting]:
        """The meetings with a turn that matches the question or one of the terms, with the turns found and
        their neighbours, in the same order; `count` measures text in the model's tokens (the caller bounds
        what a search reads)."""
        ...


@dataclass
class Consulted:
    """What an ask read, kept with its answer (`consulted` in the stored output)."""

    read: str = READ_WHOLE
    search_terms: list[str] | None = None  # the model's, when the scope was searched
    meetings: list[Meeting] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"read": self.read}
        if self.search_terms is not None:
            data["search_terms"] = self.search_terms
        data["meetings"] = [{"transcript": meeting.transcript, "title": meeting.title,
                             "occurred_at": meeting.occurred_at, "turns_read": len(meeting.turns),
                             "turn_ranges": turn_ranges(meeting.turns)} for meeting in self.meetings]
        data["turns_read"] = sum(len(meeting.turns) for meeting in self.meetings)
        return data


def turn_ranges(turns: Sequence[AskTurn]) -> list[list[int]]:
    """[first, last] of every run of consecutive turn numbers."""
    ranges: list[list[int]] = []
    for turn in turns:
        if ranges and turn.turn == ranges[-1][1] + 1:
            ranges[-1][1] = turn.turn
        else:
            ranges.append([turn.turn, turn.turn])
    return ranges


# --- what the model reads ------------------------------------------------------------------------------

def meeting_name(position: int) -> str:
    """The name a meeting goes by in the requests, M1 for the first: short, whatever its transcript id."""
    return f"M{position}"


def _header(name: str, meeting: Meeting, part: str = "") -> str:
    return (f'<meeting ref="{name}" title="{escape(meeting.title)}" date="{escape(meeting.occurred_at)}"'
            + (f' part="{part}"' if part else "") + ">")


def marked_lines(name: str, meeting: Meeting) -> list[str]:
    """The meeting's turns, one a line, each marked `[M<m> T<n>] `; a gap line where turns were left out."""
    lines: list[str] = []
    previous: int | None = None
    for turn in meeting.turns:
        if previous is not None and turn.turn > previous + 1:
            lines.append(GAP_LINE)
        lines.append(f"[{name} T{turn.turn}] {turn.line}")
        previous = turn.turn
    return lines


def render_meeting(name: str, meeting: Meeting) -> str:
    return "\n".join([_header(name, meeting), *marked_lines(name, meeting), "</meeting>"])


def document(named: list[tuple[str, Meeting]]) -> str:
    return "\n\n".join(render_meeting(name, meeting) for name, meeting in named)


def _meeting_pieces(name: str, meeting: Meeting, budget: int, count: Callable[[str], int],
                    overlap: int) -> list[tuple[str, int]]:
    """A meeting as pieces of at most `budget` tokens: whole when it fits, else cut between turns (as the
    Runner cuts a transcript), each piece under the meeting's header."""
    whole = render_meeting(name, meeting)
    tokens = count(whole)
    if tokens <= budget:
        return [(whole, tokens)]
    wrapper = count(_header(name, meeting, part="999 of 999")) + count("</meeting>") + 2 * _JOIN_TOKENS
    chunks = split_transcript("\n".join(marked_lines(name, meeting)), max_tokens=budget - wrapper, count=count,
                              overlap_tokens=min(overlap, budget // 10))
    pieces = []
    for part, chunk in enumerate(chunks, 1):
        text = "\n".join([_header(name, meeting, part=f"{part} of {len(chunks)}"), chunk, "</meeting>"])
        pieces.append((text, count(text)))
    return pieces


def meeting_groups(named: list[tuple[str, Meeting]], *, budget: int, count: Callable[[str], int],
                   overlap: int = 0) -> list[str]:
    """The documents of the map requests: consecutive meetings packed into as few requests as keep each
    within `budget` tokens."""
    items = [(text, tokens + _JOIN_TOKENS) for name, meeting in named
             for text, tokens in _meeting_pieces(name, meeting, budget - _JOIN_TOKENS, count, overlap)]
    return ["\n\n".join(group) for group in pack(items, budget)]


def _question_instruction(request: structured.TaskRequest, *, read: str) -> str:
    what = ("every meeting in scope" if read == READ_WHOLE else
            f"the passages of the meetings in scope that a search found for the question ({GAP_LINE} marks "
            "turns left out)")
    return (f"Question: {structured.instruction(request)}\n\n"
            f"The meetings above (each with its title and date) are {what}. Answer the question from them only, "
            "saying which meetings (title and date) each part of the answer comes from; if they do not answer "
            "it, say so plainly.")


def ask_prompt(*, system: str, request: structured.TaskRequest, meetings_document: str, read: str) -> Prompt:
    return Prompt(system=system, document=meetings_document,
                  instruction=_question_instruction(request, read=read),
                  cache_key=prompts.cache_key_for(meetings_document, system))


def map_prompt(*, system: str, request: structured.TaskRequest, meetings_document: str, read: str, part: int,
               parts: int) -> Prompt:
    return Prompt(
        system=system,
        document=(f"These are some of the meetings in scope (group {part} of {parts}; a meeting too long for one "
                  "group is cut into parts, which overlap slightly).\n\n" + meetings_document),
        instruction=(_question_instruction(request, read=read) + "\n\nAnswer from these meetings only. Keep every "
                     "concrete detail (names, numbers, decisions, owners, dates) and its citations, so that the "
                     "answers of all groups can be merged later; if these meetings say nothing about the "
                     "question, give an empty text and no references."),
        cache_key=prompts.cache_key_for(meetings_document, system),
    )


def reduce_prompt(*, system: str, request: structured.TaskRequest, partials: list[str]) -> Prompt:
    numbered = "\n\n".join(f"<partial_answer part=\"{i}\">\n{text}\n</partial_answer>"
                           for i, text in enumerate(partials, 1))
    return Prompt(
        system=system,
        document=("The meetings in scope were too many to read at once, so the question below was answered "
                  "separately for groups of them. These are the partial answers (each its text and its "
                  "references, with citations of meeting and turn):\n\n" + numbered),
        instruction=(f"Question: {structured.instruction(request)}\n\nMerge the partial answers into one answer "
                     "to the question, as if you had read every meeting at once: remove duplicates, keep every "
                     "distinct fact with the meetings it comes from, and keep the citations of every claim you "
                     "keep exactly as the partial answers give them (meeting, turn and quote); add none."),
    )


def search_terms_prompt(*, system: str, question: str, languages: Sequence[str]) -> Prompt:
    known = sorted({tag for tag in languages if tag})
    note = (f" The meetings are in {', '.join(known)}: give the terms in the meetings' language(s)." if known
            else "")
    return Prompt(system=system, document=f"<question>\n{question}\n</question>",
                  instruction=SEARCH_TERMS_INSTRUCTION.format(languages=note))


def parse_search_terms(text: str) -> list[str]:
    """The terms of the model's answer: distinct, trimmed, at most MAX_SEARCH_TERMS; none from an answer that
    is not what was asked (the question's own words still search)."""
    value, problem = structured.parse_answer(text, SEARCH_TERMS_SCHEMA)
    if problem:
        return []
    terms: list[str] = []
    for term in value["terms"]:
        term = " ".join(term.split())[:MAX_TERM_CHARS]
        if term and term.casefold() not in {t.casefold() for t in terms}:
            terms.append(term)
    return terms[:MAX_SEARCH_TERMS]


# --- planning ------------------------------------------------------------------------------------------

def _fixed_tokens(config: RunConfig, request: structured.TaskRequest, count: Callable[[str], int]) -> int:
    """Tokens of a question request around its meetings: the longer of the one-call and the map layout."""
    system = config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT
    layouts = [ask_prompt(system=system, request=request, meetings_document="", read=READ_SEARCH),
               map_prompt(system=system, request=request, meetings_document="", read=READ_SEARCH, part=999,
                          parts=999)]
    return max(prompt_tokens(layout, count) for layout in layouts)


def read_whole(scope: AskScope, *, budget: int, count: Callable[[str], int]) -> tuple[list[tuple[str, Meeting]], int]:
    """(the scope's meetings with their names, their document's tokens) when reading them whole fits `budget`
    tokens; ([], 0) when it does not."""
    # Reading whole costs at least chars/4 tokens (a model's count never counts fewer): a scope over that is
    # searched without being read first.
    if math.ceil(scope.chars / 4) > budget:
        return [], 0
    named = [(meeting_name(i), m) for i, m in enumerate(scope.whole(), 1)]
    tokens = count(document(named))
    return (named, tokens) if named and tokens <= budget else ([], 0)


def read_budget(config: RunConfig, request: structured.TaskRequest, count: Callable[[str], int]) -> int:
    """Tokens left for the meetings in one request of this question."""
    return config.context - output_limit(config) - _fixed_tokens(config, request, count)


def _reduce_room(config: RunConfig, request: structured.TaskRequest, count: Callable[[str], int]) -> tuple[int, int]:
    """(tokens of an empty reduce request, tokens left in it for the partial answers)."""
    system = config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT
    fixed = prompt_tokens(reduce_prompt(system=system, request=request, partials=[]), count)
    return fixed, config.context - output_limit(config) - fixed


def _search_params(state: TaskState):
    model = state.model
    limit = model.max_output if model.params.reasoning_model else min(model.max_output, SEARCH_TERMS_MAX_OUTPUT)
    return dataclasses.replace(model.params, max_output_tokens=limit, schema=SEARCH_TERMS_SCHEMA,
                               schema_name="search_terms", schema_strict=strict_compatible(SEARCH_TERMS_SCHEMA))


# --- the run -------------------------------------------------------------------------------------------

def run_ask(runner: Runner, spec: TaskSpec, scope: AskScope) -> list[TaskOutcome]:
    """The one outcome of an ask task (`spec.prompt`: a cited task across meetings), through the runner's
    hooks (should_start, on_call, on_done) and its stop token, as Runner.run gives those of a job's tasks, and on
    its model chain as they are: `answer` runs again from the start on each model the task moves to (planned for
    that model's context, its calls billed at its prices)."""
    with runner.pool(1):
        return runner.run_specs([spec], lambda one: runner.task_outcome(
            one.name, lambda state: answer(runner, state, structured.decode_task(one.prompt), scope)))


def answer(runner: Runner, state: TaskState, request: structured.TaskRequest, scope: AskScope) -> str:
    """The stored output of the question's answer on the model the task is on (structured.encode_result's, with
    `consulted`)."""
    if not request.across:
        raise ValueError("an ask task is a cited task across meetings (TaskRequest.across)")
    count, config = state.model.count, state.model.config
    system = config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT
    state.params = structured.params_for(request, name=state.name, params=state.model.params)
    budget = read_budget(config, request, count)
    if budget <= 0:
        raise ProviderError(config.provider, CONTEXT_LENGTH, f"The question and the output limit leave no room for "
                            f"the meetings in {config.model.name}'s context of {config.context} tokens")

    consulted = Consulted()
    named, _ = read_whole(scope, budget=budget, count=count)
    consulted.meetings = [meeting for _, meeting in named]
    if not named:
        consulted.read = READ_SEARCH
        reply = runner.call(state, search_terms_prompt(system=system, question=request.prompt,
                                                       languages=scope.languages), _search_params(state))
        consulted.search_terms = parse_search_terms(reply.text)
        consulted.meetings = scope.search(question=request.prompt, terms=consulted.search_terms, count=count)
        named = [(meeting_name(i), m) for i, m in enumerate(consulted.meetings, 1)]
    if not named:
        terms = ", ".join(consulted.search_terms or []) or "none"
        text = ("No turn of the meetings in scope matched the question or the search terms "
                f"({terms}), so no meeting was read and the question was not put to the model.")
        return _stored(structured.encode_result(text, CitationReport(), references=[]), named, consulted)

    groups = meeting_groups(named, budget=budget, count=count, overlap=config.overlap_tokens)
    state.chunks = len(groups)
    if len(groups) == 1:
        text = runner.call(state, ask_prompt(system=system, request=request, meetings_document=groups[0],
                                             read=consulted.read)).text
    else:
        text = _map_reduce(runner, state, request, groups, read=consulted.read)

    def repair(answer_text: str, problem: str) -> str:
        return runner.call(state, structured.repair_prompt(system=system, request=request, answer=answer_text,
                                                           problem=problem)).text

    turns = {name: {turn.turn: turn.line for turn in meeting.turns} for name, meeting in named}
    return _stored(structured.finish(text, request, repair=repair, transcripts=turns), named, consulted)


def _map_reduce(runner: Runner, state: TaskState, request: structured.TaskRequest, groups: list[str], *,
                read: str) -> str:
    count, config = state.model.count, state.model.config
    system = config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT
    partials = runner.gather(state, [
        (lambda part=part, group=group: runner.call(state, map_prompt(
            system=system, request=request, meetings_document=group, read=read, part=part,
            parts=len(groups))).text)
        for part, group in enumerate(groups, 1)
    ])
    _, room = _reduce_room(config, request, count)
    while True:
        packed = group_partials(partials, max_tokens=room, count=count)
        if len(packed) == 1:
            return runner.call(state, reduce_prompt(system=system, request=request, partials=packed[0])).text
        if len(packed) >= len(partials):
            # No two answers fit one request together: another level would not shrink them.
            raise ProviderError(config.provider, CONTEXT_LENGTH, f"The partial answers are too long to merge within "
                                f"{config.model.name}'s context of {config.context} tokens; set a lower "
                                "max_output_tokens")
        partials = runner.gather(state, [
            (lambda group=group: runner.call(state, reduce_prompt(system=system, request=request,
                                                                  partials=group)).text)
            for group in packed
        ])


def _stored(output: str, named: list[tuple[str, Meeting]], consulted: Consulted) -> str:
    """The checked output with every citation naming its transcript id instead of its name in the requests,
    and what was read beside it."""
    ids = {name: meeting.transcript for name, meeting in named}
    data = json.loads(output)
    for reference in data.get("references") or []:
        for citation in reference.get("citations") or []:
            citation["transcript"] = ids[citation["transcript"]]  # checked: every name left is one of these
    data["consulted"] = consulted.as_dict()
    return json.dumps(data, ensure_ascii=False)


# --- what it can cost ----------------------------------------------------------------------------------

def estimate_ask(*, config: RunConfig, request: structured.TaskRequest, scope: AskScope) -> Estimate:
    """The cost range of an ask before it runs, planned as `answer` plans it: the scope read whole when it fits
    one request, else searched, reading at most `scope.read_tokens` tokens of turns.

    Lowest: a whole read answered in one output token, or a search that finds nothing (the search-terms call
    alone). Highest: every planned call at its output limit, a search reading its whole bound, the meetings
    cut and packed at their worst (each map request at most half full), every reduce level full."""
    def count(text: str) -> int:  # the tokens billed
        return count_tokens(text, provider=config.provider, model=config.model.name)

    def plan_count(text: str) -> int:  # as the runner counts (tokens.context_tokens), so the plan is the run's
        return context_tokens(text, provider=config.provider, model=config.model.name)

    system = config.system_prompt or prompts.DEFAULT_SYSTEM_PROMPT
    max_output = output_limit(config)
    budget = read_budget(config, request, plan_count)
    fixed = _fixed_tokens(config, request, count)
    estimate = TaskEstimate(name="answer")
    if budget <= 0:
        estimate.chunks = 0
        estimate.error = f"The question leaves no room for the meetings in {config.model.name}'s context"
        return _estimate(config, estimate, max_output)
    named, _ = read_whole(scope, budget=budget, count=plan_count)
    if named:
        calls = [fixed + count(document(named))]
        return _estimate(config, priced(config, estimate, calls, calls, max_output), max_output)
    terms = prompt_tokens(search_terms_prompt(system=system, question=request.prompt, languages=scope.languages),
                          count)
    # Cut pieces overlap (at most a tenth of a request) and carry their meeting's header.
    read = math.ceil(scope.read_tokens * 1.25)
    if read <= budget:
        reads = [fixed + read]
    else:
        maps = 2 * math.ceil(read / budget) + 1  # greedy packing: two neighbours never fit one request
        reads = [fixed + math.ceil(read / maps)] * maps
        reduce_fixed, room = _reduce_room(config, request, count)
        reads += reduce_calls(maps, partial_tokens=max_output, fixed=reduce_fixed, room=room)
    estimate.chunks = len(reads)
    return _estimate(config, priced(config, estimate, [terms], [terms, *reads], max_output), max_output)


def _estimate(config: RunConfig, task: TaskEstimate, max_output: int) -> Estimate:
    return Estimate(provider=config.provider, model=config.model.name, price_unknown=not config.model.listed,
                    token_count="exact" if config.provider == "openai" and config.model.listed else "approximate",
                    context_tokens=config.context, transcript_tokens=0, max_output_tokens=max_output, tasks=[task],
                    processing=config.processing)

