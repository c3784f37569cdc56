"""The engine's question across meetings (analysis/engine/ask.py), through the real SDKs against the emulator.

The scope here is an in-memory stand-in for the worker's (tests/jobs/test_ask_*.py run the real one, on
PostgreSQL's full-text search): its search keeps the turns that contain a word of the question or of the terms,
with their neighbours, so that what the engine does with what a search gives can be checked on its own.
"""

from __future__ import annotations

import json
import re

import pytest

from analysis.analyze import ask_question, run_config
from analysis.engine import ask, citations, structured
from analysis.engine.planning import TaskSpec
from analysis.engine.transcripts import normalize_transcript
from analysis.engine.turns import parse_turns
from emulator.fault_specs import faults
from tests.conftest import transcript

MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")]


def meeting(name: str, transcript_id: int, day: int) -> ask.Meeting:
    turns = tuple(ask.AskTurn(turn=t.index, speaker=t.speaker, start=t.start, text=t.text)
                  for t in parse_turns(normalize_transcript(transcript(name))))
    return ask.Meeting(transcript=transcript_id, title=name.removesuffix(".txt"), occurred_at=f"2026-11-{day:02d}",
                       turns=turns)


class ListScope:
    """The scope's interface over a list of meetings (a stand-in for PostgreSQL's search, see the docstring)."""

    def __init__(self, meetings: list[ask.Meeting], neighbours: int = 1) -> None:
        self.meetings = meetings
        self.chars = sum(len(t.text) for m in meetings for t in m.turns)
        self.languages = ("en",)
        self.read_tokens = 50_000
        self.neighbours = neighbours
        self.searched: list[tuple[str, list[str]]] = []

    def whole(self) -> list[ask.Meeting]:
        return self.meetings

    def search(self, *, question, terms, count):
        self.searched.append((question, terms))
        words = {w.casefold() for w in re.findall(r"\w{5,}", " ".join([question, *terms]))}
        found = []
        for m in self.meetings:
            hits = [i for i, t in enumerate(m.turns) if words & {w.casefold() for w in re.findall(r"\w+", t.text)}]
            keep = sorted({j for i in hits for j in range(i - self.neighbours, i + self.neighbours + 1)
                           if 0 <= j < len(m.turns)})
            if keep:
                found.append(ask.Meeting(m.transcript, m.title, m.occurred_at, tuple(m.turns[j] for j in keep)))
        return found


def question(text: str) -> TaskSpec:
    return TaskSpec(name="answer", prompt=structured.encode_task(
        structured.TaskRequest(prompt=text, cite=True, across=True)))


def run(scope, provider="openai", model="gpt-4o-mini", text="What did they decide about the remote control?"):
    config = run_config(provider=provider, model=model)
    [outcome] = ask_question(scope=scope, config=config, spec=question(text))
    return outcome, json.loads(outcome.text) if outcome.ok else None


@pytest.mark.parametrize("provider,model", MODELS)
def test_a_scope_that_fits_is_read_whole_in_one_request_with_every_turn_marked(emulator, provider, model):
    scope = ListScope([meeting("TS3010a.txt", 41, 3), meeting("ES2009b.txt", 42, 5)])
    outcome, stored = run(scope, provider, model)
    assert outcome.ok, outcome.error
    [record] = emulator.requests(provider)
    sent = json.dumps(record["body"], ensure_ascii=False)
    # Every turn of both meetings, marked by meeting and turn, under its meeting's title and date.
    for name, m in (("M1", scope.meetings[0]), ("M2", scope.meetings[1])):
        assert all(f"[{name} T{t.turn}] " in sent for t in m.turns)
        assert f'title=\\"{m.title}\\" date=\\"{m.occurred_at}\\"' in sent
    assert scope.searched == []  # no search, no search-terms call
    consulted = stored["consulted"]
    assert consulted["read"] == "whole" and "search_terms" not in consulted
    assert [(m["transcript"], m["turns_read"]) for m in consulted["meetings"]] == [(41, 168), (42, 298)]
    assert consulted["turns_read"] == 168 + 298
    # The emulator cites real turns of the meetings it read: checked, kept, named by their transcript ids.
    assert stored["citations_checked"] == 2 and stored["citations_rejected"] == 0
    cited = [c for ref in stored["references"] for c in ref["citations"]]
    assert {c["transcript"] for c in cited} <= {41, 42}
    assert outcome.calls == 1 and outcome.chunks == 1


def test_a_true_citation_survives_and_a_false_one_is_removed(emulator):
    scope = ListScope([meeting("TS3010a.txt", 7, 3), meeting("ES2009b.txt", 8, 5)])
    second = scope.meetings[1].turns[9]
    true = {"transcript": "M2", "turn": second.turn, "quote": " ".join(second.text.split()[:4])}
    answer = {"text": "They chose rubber buttons.", "references": [{"claim": "rubber buttons", "citations": [
        true,
        {"transcript": "M1", "turn": second.turn, "quote": " ".join(second.text.split()[:4])},  # the other meeting's
        {"transcript": "M2", "turn": 99_999, "quote": "no such turn here"},
        {"transcript": "M9", "turn": 1, "quote": "a meeting that was not read"},
    ]}]}
    emulator.add_faults(faults.reply(json.dumps(answer), "openai"))
    outcome, stored = run(scope)
    assert outcome.ok, outcome.error
    assert stored["value"] == "They chose rubber buttons."
    assert stored["references"][0]["citations"] == [{**true, "transcript": 8}]
    assert (stored["citations_checked"], stored["citations_rejected"]) == (4, 3)
    problems = " | ".join(stored["citation_problems"])
    assert "of M1 does not say" in problems and "turn 99999 of M2 does not exist" in problems
    assert "'M9' is not one of the meetings read" in problems


def test_a_scope_too_large_is_searched_with_the_models_terms_billed_to_the_task(emulator, settings):
    settings.MODEL_CONTEXT_OVERRIDES_RAW = "gpt-4o-mini=20000"
    scope = ListScope([meeting(name, i, i) for i, name in enumerate(["Bed015.txt", "covid_2.txt", "Bro011.txt"], 1)])
    emulator.add_faults(faults.reply(json.dumps({"terms": ["multiplier", "vaccine rollout"]}), "openai",
                                     match="search terms"))
    outcome, stored = run(scope, text="What was said about the vaccines?")
    assert outcome.ok, outcome.error
    first, *rest = sorted(emulator.requests("openai"), key=lambda r: r["seq"])
    assert "search terms" in json.dumps(first["body"]) and first["body"]["response_format"]["json_schema"]["name"] == \
        "search_terms"
    assert scope.searched == [("What was said about the vaccines?", ["multiplier", "vaccine rollout"])]
    consulted = stored["consulted"]
    assert consulted["read"] == "search" and consulted["search_terms"] == ["multiplier", "vaccine rollout"]
    assert consulted["turns_read"] < sum(len(m.turns) for m in scope.meetings)
    # The search-terms call is a call of the task: counted and billed with the answer's.
    assert outcome.calls == 1 + len(rest) and outcome.usage.input_tokens == sum(r["prompt_tokens"] for r in
                                                                                [first, *rest])


@pytest.mark.parametrize("provider,model", MODELS)
def test_meetings_over_the_context_run_map_reduce_with_no_request_over_it(emulator, settings, provider, model):
    limit = 12_000
    settings.MODEL_CONTEXT_OVERRIDES_RAW = f"{model}={limit}"
    emulator.configure(max_context=limit)
    # Read whole only if it fits: these do not, so they are searched (every turn matches "the"-free words
    # below), and what the search gives is still far over one request.
    scope = ListScope([meeting(name, i, i) for i, name in enumerate(
        ["TS3010a.txt", "ES2009b.txt", "IS1006b.txt", "Bro011.txt"], 1)], neighbours=3)
    outcome, stored = run(scope, provider, model, text="What did they say about the project, the design and "
                                                       "the meeting?")
    assert outcome.ok, outcome.error
    stats = emulator.stats()
    assert stats["rejected_over_context"] == 0 and 0 < stats["max_prompt_tokens_seen"] <= limit
    records = sorted(emulator.requests(provider), key=lambda r: r["seq"])
    bodies = [json.dumps(r["body"], ensure_ascii=False) for r in records]
    maps = [b for b in bodies if "These are some of the meetings in scope" in b]
    reduces = [b for b in bodies if "Merge the partial answers" in b]
    assert len(maps) == outcome.chunks >= 2 and reduces
    # Every turn read reached a map request, marked with its meeting.
    for name, m in ((ask.meeting_name(i), m) for i, m in enumerate(scope.search(
            question="What did they say about the project, the design and the meeting?", terms=[],
            count=len), 1)):
        assert all(any(f"[{name} T{t.turn}] " in b for b in maps) for t in m.turns)
    # The reduce's citations come from the partial answers and are checked against the meetings read.
    assert stored["citations_checked"] > 0 and stored["citations_rejected"] == 0
    assert outcome.calls == len(records)


def test_nothing_found_asks_no_question_and_says_so(emulator, settings):
    settings.MODEL_CONTEXT_OVERRIDES_RAW = "gpt-4o-mini=8000"
    scope = ListScope([meeting("Bed015.txt", 1, 1)])
    emulator.add_faults(faults.reply(json.dumps({"terms": ["zzzqqq"]}), "openai", match="search terms"))
    outcome, stored = run(scope, text="Xylophones?")
    assert outcome.ok and outcome.calls == 1  # the search-terms call only
    assert stored["consulted"]["turns_read"] == 0 and stored["references"] == []
    assert "no meeting was read" in stored["value"]


def test_a_citation_across_meetings_is_checked_exactly_as_one_of_a_single_transcript():
    lines = {7: "[00:01:02] Project Manager: Um and no teletext . I 'm not sure what {disfmarker} we do ."}
    quote = "i’M NOT   sure, what"
    single, report = citations.check_value({"citations": [{"turn": 7, "quote": quote}]}, lines)
    across, across_report = citations.check_across({"citations": [{"transcript": "M1", "turn": 7, "quote": quote}]},
                                                   {"M1": lines})
    assert report.rejected == across_report.rejected == 0
    assert across["citations"] == [{"transcript": "M1", "turn": 7, "quote": quote}]
    _, bare = citations.check_across({"citations": [7, {"turn": 7, "quote": quote}]}, {"M1": lines})
    assert bare.rejected == 2  # across meetings, a citation must name its meeting


def test_the_estimate_plans_a_whole_read_or_a_bounded_search_as_the_run_does(settings):
    request = structured.TaskRequest(prompt="What was decided?", cite=True, across=True)
    small = ListScope([meeting("TS3010a.txt", 1, 1), meeting("ES2009b.txt", 2, 2)])
    large = ListScope([meeting(name, i, i) for i, name in enumerate(["Bed015.txt", "covid_2.txt", "Bro011.txt"], 1)])
    large.read_tokens = 20_000

    def estimate(scope, context=None):
        settings.MODEL_CONTEXT_OVERRIDES_RAW = f"gpt-4o-mini={context}" if context else ""
        return ask.estimate_ask(config=run_config(provider="openai", model="gpt-4o-mini"), request=request,
                                scope=scope)

    whole = estimate(small)
    assert whole.calls == 1 and whole.cost_low < whole.cost_high
    assert whole.input_tokens > sum(len(t.text) for m in small.meetings for t in m.turns) / 5
    # Over a 60,000-token context these meetings are searched: the terms call, then one request of the bound.
    searched = estimate(large, 60_000)
    assert searched.calls == 2 and searched.cost_low < whole.cost_low < searched.cost_high
    assert searched.input_tokens_per_call[1] > large.read_tokens
    # Over a small context the bounded read is planned as map-reduce: more calls, each within the context.
    mapped = estimate(large, 12_000)
    assert mapped.calls > 5 and max(mapped.input_tokens_per_call) <= 12_000
