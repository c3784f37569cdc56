"""Turn indexes, speaker statistics (against a hand count on a shared transcript), and the citation
check's normalisation."""

from __future__ import annotations

import pytest

from analysis.engine import citations, turns
from analysis.engine.chunking import split_transcript
from analysis.engine.transcripts import normalize_transcript
from tests.conftest import transcript, work_burst

# Counted on ../shared/transcripts/TS3010a.txt with awk (one turn a line, "Speaker: text"; a word is a
# whitespace-separated token with a letter or digit that is not a {marker}).
TS3010A_HAND_COUNT = [
    # speaker, turns, words, longest turn (words)
    ("Project Manager", 56, 486, 108),
    ("Industrial Designer", 48, 259, 51),
    ("Marketing", 40, 177, 58),
    ("User Interface", 24, 189, 74),
]


def test_speaker_statistics_match_a_hand_count():
    stats = turns.speaker_stats(normalize_transcript(transcript("TS3010a.txt")))
    assert [(s["speaker"], s["turns"], s["words"], s["longest_turn_words"]) for s in stats] == TS3010A_HAND_COUNT
    assert all(s["talk_time_s"] is None for s in stats)  # no times in the plain text


def test_talk_time_where_the_transcript_has_times():
    text = normalize_transcript(transcript("TS3010a.vtt"))
    stats = turns.speaker_stats(text)
    first, last = turns.time_range(text)
    # Each timed turn lasts until the next one starts: the talk times add up to the span.
    assert sum(s["talk_time_s"] for s in stats) == pytest.approx(last - first)
    assert [s["speaker"] for s in stats][:2] == ["Project Manager", "Industrial Designer"]


def test_turn_n_is_line_n_and_every_cut_piece_keeps_its_number():
    text = "Alice: short one.\n\nBob: " + " ".join(f"Sentence number {i} is here." for i in range(200))
    parsed = turns.parse_turns(text)
    assert [(t.index, t.speaker) for t in parsed] == [(1, "Alice"), (3, "Bob")]
    indexed = turns.indexed_transcript(text)
    assert indexed.split("\n")[1].startswith("[T3] Bob: ")
    pieces = split_transcript(indexed, max_tokens=120, count=lambda s: len(s) // 4 + 1, overlap_tokens=0)
    bob = [line for piece in pieces for line in piece.split("\n") if "Sentence" in line]
    assert len(bob) > 3 and all(line.startswith("[T3] ") for line in bob)


@pytest.mark.parametrize("quote", [
    "I'm not sure what",          # the corpus writes "I 'm"
    "i’M NOT   sure, what",       # curly apostrophe, case, spaces, punctuation
    "not sure what we",
])
def test_quotes_match_after_normalising(quote):
    lines = {7: "[00:01:02] Project Manager: Um and no teletext . I 'm not sure what {disfmarker} we do ."}
    value, report = citations.check_value({"citations": [{"turn": 7, "quote": quote}]}, lines)
    assert report.rejected == 0 and value["citations"] == [{"turn": 7, "quote": quote}]


def test_failing_citations_are_removed_counted_and_duplicates_merged():
    lines = {1: "Alice: We ship the release on Friday .", 2: "Bob: I will write the notes ."}
    answer = {"items": [{"task": "ship", "citations": [
        {"turn": 1, "quote": "ship the release"},
        {"turn": 1, "quote": "Ship the release!"},  # the same, from an overlapping chunk
        {"turn": 9, "quote": "ship the release"},   # no turn 9
        {"turn": 2, "quote": "ship the release"},   # not what turn 2 says
        {"turn": 2, "quote": "I"},                  # too short to check
        2,                                          # a bare turn number, no quote
    ]}]}
    value, report = citations.check_value(answer, lines)
    assert value["items"][0]["citations"] == [{"turn": 1, "quote": "ship the release"}, 2]
    assert (report.checked, report.rejected) == (6, 3)


@pytest.mark.django_db(transaction=True)
def test_every_job_document_has_speaker_statistics(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Provide a brief summary"}}, format="json")
    job_id = response.json()["job_id"]
    work_burst()
    doc = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    speakers = doc["result"]["speakers"]
    assert [(s["speaker"], s["turns"], s["words"], s["longest_turn_words"]) for s in speakers] == TS3010A_HAND_COUNT
    assert doc["result"]["metadata"]["total_cost"] > 0  # the model call; the statistics cost nothing more
    from jobs.models import Job

    stored = Job.objects.get(id=job_id).turns
    assert len(stored) == 168 and stored[0] == {"index": 1, "speaker": "Project Manager", "start": None, "end": None}


@pytest.mark.parametrize("text, quote, marked", [
    ("Crash-free sessions went from 97.1 percent to 99.4 percent.", "went from 97.1 percent", "went from 97.1 percent"),
    ("I 'm going to {disfmarker} book the FERRY tomorrow", "I'm going to book the ferry",
     "I 'm going to {disfmarker} book the FERRY"),
    ("That’s the permissions change.", "that's the permissions", "That’s the permissions"),
    ("Straße und Weg", "STRASSE und", "Straße und"),
])
def test_quote_span_finds_the_quoted_words_as_written(text, quote, marked):
    start, end = citations.quote_span(text, quote)
    assert text[start:end] == marked


@pytest.mark.parametrize("quote", ["words nobody said here", "short", "sessions went from 97.1 percent to 99.5"])
def test_quote_span_is_none_where_the_check_would_reject_the_quote(quote):
    assert citations.quote_span("Crash-free sessions went from 97.1 percent to 99.4 percent.", quote) is None
