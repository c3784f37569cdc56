"""Asking across the thirty shared meetings: a planted answer is found, sent and cited, and the turns an ask reads
cover the benchmark's answer spans (reference.json, relevant_text_span).

The scope (about 400,000 tokens) is over gpt-4o-mini's context, so every ask here searches: PostgreSQL's full-text
search for the question's words and the model's terms, each hit with its neighbours."""

from __future__ import annotations

import json
import pytest

from analysis.engine.transcript_lines import clean_spaces, split_speaker
from analysis.engine.transcripts import normalize_transcript
from analysis.engine.turns import parse_turns
from emulator.fault_specs import faults
from jobs.models import Job
from tests.conftest import work_burst
from tests.jobs.asking import MEETINGS, ask, meeting_text, reference, sent_bodies, store, store_all

pytestmark = pytest.mark.django_db(transaction=True)

# Planted in one turn of the earliest meeting (dated first, it is M1 of whatever the search reads): the answer to
# the question below, in words the question does not use, so that only the model's search terms find it.
PLANTED_MEETING = "Bro011"  # one speaker turn a line: turn N is line N
PLANTED_TURN = 100
PLANTED = "so we settled it: the Zephyr handset goes to the stores on the fourteenth of March, not earlier"
QUESTION = "When will the new remote control be released?"
TERMS = ["Zephyr", "handset", "stores", "release date"]


def planted_text() -> str:
    lines = meeting_text(PLANTED_MEETING).split("\n")
    speaker, _ = split_speaker(lines[PLANTED_TURN - 1])
    lines[PLANTED_TURN - 1] = f"{speaker}: {PLANTED}"
    return "\n".join(lines)


def test_a_planted_answer_among_thirty_meetings_is_sent_and_its_true_citation_kept(alice, alice_client, emulator):
    stored = store_all(alice, [name for name in MEETINGS if name != PLANTED_MEETING])
    planted = store(alice, PLANTED_MEETING, -1, text=planted_text())
    assert len(stored) + 1 == 30 and planted.turn_count >= PLANTED_TURN
    true = {"transcript": "M1", "turn": PLANTED_TURN, "quote": "the Zephyr handset goes to the stores"}
    false = {"transcript": "M1", "turn": PLANTED_TURN, "quote": "the Zephyr handset ships in June"}
    emulator.add_faults([
        faults.reply(json.dumps({"terms": TERMS}), "openai", match="search terms"),
        faults.reply(json.dumps({"text": "On the fourteenth of March.", "references": [
            {"claim": "The handset goes to the stores on the fourteenth of March.", "citations": [true, false]}]}),
            "openai", match="Question: " + QUESTION),
    ])

    job_id = ask(alice_client, QUESTION).json()["job_id"]
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished", document["error"]
    metadata = document["result"]["metadata"]
    assert metadata["read"] == "search" and metadata["search_terms"] == TERMS
    total = sum(t.turn_count for t in stored.values()) + planted.turn_count
    assert 0 < metadata["turns_read"] < total / 5

    # The planted turn reached the model, marked with its meeting and number, under its meeting's title.
    terms_request, answer_request = sent_bodies(emulator)
    assert "search terms" in terms_request and QUESTION in terms_request
    assert f"[M1 T{PLANTED_TURN}] " in answer_request and PLANTED in answer_request
    assert f'title=\\"{PLANTED_MEETING}\\"' in answer_request
    first = metadata["meetings"][0]
    assert first["transcript"] == str(planted.id)
    assert any(a <= PLANTED_TURN <= b for a, b in first["turn_ranges"])

    # The true citation stands, named by its transcript id; the misquote is removed and counted.
    answer = metadata["tasks"]["answer"]
    assert document["result"]["results"]["answer"] == "On the fourteenth of March."
    assert answer["references"][0]["citations"] == [{**true, "transcript": str(planted.id)}]
    assert (answer["citations_checked"], answer["citations_rejected"]) == (2, 1)
    assert answer["citation_problems"] == [f"turn {PLANTED_TURN} of M1 does not say 'the Zephyr handset ships in June'"]
    # Both calls are the task's: billed with it.
    assert answer["calls"] == 2 and answer["usage"]["input_tokens"] == sum(
        r["prompt_tokens"] for r in emulator.requests("openai"))


# --- the benchmark's questions ---------------------------------------------------------------------

def stored_numbers(name: str, text: str) -> list[int]:
    """The stored turn number of each line of the corpus file (0-based, as relevant_text_span counts): the
    normalized transcript merges a speaker's consecutive lines into one turn."""
    turns = parse_turns(normalize_transcript(text))
    numbers, position = [], 0
    for line in (line for line in text.split("\n") if line.strip()):
        _, said = split_speaker(line)
        said = clean_spaces(said)
        while position < len(turns) - 1 and said[:40] not in turns[position].text:
            position += 1
        numbers.append(turns[position].index)
    return numbers


def corpus_questions() -> list[tuple[str, str, set[int]]]:
    """(meeting, question, the stored turns of its answer span) for every question with a span."""
    questions = []
    for name in MEETINGS:
        numbers = stored_numbers(name, meeting_text(name))
        for item in reference(name).get("specific_query_list", []):
            spans = item.get("relevant_text_span") or []
            turns = {numbers[i] for a, b in spans for i in range(int(a), min(int(b), len(numbers) - 1) + 1)}
            if turns:
                questions.append((name, item["query"], turns))
    return questions


def test_the_turns_an_ask_reads_cover_the_benchmarks_answer_spans(alice, alice_client, emulator, capsys):
    stored = store_all(alice)
    questions = corpus_questions()
    assert len(questions) > 150
    # No terms from the emulator's model: what is measured is the search for the question's own words.
    emulator.add_faults(faults.reply(json.dumps({"terms": []}), "openai", match="search terms", times=-1))
    jobs = {ask(alice_client, question).json()["job_id"]: (name, question, turns)
            for name, question, turns in questions}
    work_burst()

    found = covered = 0.0
    for job in Job.objects.filter(id__in=jobs):
        name, question, turns = jobs[str(job.id)]
        document = alice_client.get(f"/api/v1/jobs/{job.id}").json()
        assert document["status"] == "finished", document["error"]
        meetings = {m["transcript"]: m for m in document["result"]["metadata"]["meetings"]}
        read = {n for a, b in meetings.get(str(stored[name].id), {}).get("turn_ranges", []) for n in range(a, b + 1)}
        found += bool(read & turns)
        covered += len(read & turns) / len(turns)
    share, mean = found / len(questions), covered / len(questions)
    with capsys.disabled():
        print(f"\nask coverage over {len(questions)} questions: {share:.2f} read a turn of the answer span, "
              f"{mean:.2f} of the span's turns read on average")
    assert share >= 0.7 and mean >= 0.3
