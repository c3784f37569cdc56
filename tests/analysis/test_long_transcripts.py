"""Transcripts longer than the model can read: map-reduce within the context, through the real SDKs.

The emulator counts a request's tokens as characters/4 and rejects any request over its
max_context, as the independent checker does; our own counts must keep every request under it
for every provider (OpenAI's real encoding counts fewer tokens than chars/4 on English text).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from analysis.analyze import analyze_transcript_task, run_analysis, run_config
from analysis.engine.catalogue import get_model
from analysis.engine.planning import TaskSpec
from analysis.engine.pricing import cost_of
from analysis.engine.providers.usage import Usage
from analysis.engine.transcripts import normalize_transcript
from tests.conftest import transcript, work_burst

LIMIT = 16_000
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")]


def long_meeting() -> str:
    # Two real meetings joined: ~300,000 characters, ~75,000 tokens at chars/4.
    return normalize_transcript(transcript("Bed015.txt") + "\n" + transcript("covid_2.txt"))


@pytest.fixture
def capped(settings, emulator):
    settings.MAX_PROMPT_TOKENS = LIMIT
    emulator.configure(max_context=LIMIT)
    return emulator


def request_text(record: dict) -> str:
    return json.dumps(record["body"], ensure_ascii=False)


def expected_cost(model: str, provider: str, records: list[dict]) -> Decimal:
    info = get_model(provider, model)
    return sum((cost_of(info, Usage(input_tokens=r["prompt_tokens"], output_tokens=r["output_tokens"]))
                for r in records), Decimal("0"))


@pytest.mark.parametrize("provider,model", MODELS)
def test_long_transcript_is_chunked_and_merged_within_the_context(capped, provider, model):
    text = long_meeting()
    assert len(text) / 4 > 4 * LIMIT

    result = analyze_transcript_task(text, provider, model, None, {"summary": "Provide a brief summary"})

    stats = capped.stats()
    assert stats["rejected_over_context"] == 0
    assert 0 < stats["max_prompt_tokens_seen"] <= LIMIT
    assert result["errors"] == {}
    meta = result["metadata"]["tasks"]["summary"]
    chunks = meta["chunks"]
    assert chunks >= 5
    records = capped.requests(provider)
    # One map call a chunk and one reduce call; each call billed.
    assert meta["calls"] == meta["tries"] == len(records) == chunks + 1
    assert meta["usage"]["input_tokens"] == sum(r["prompt_tokens"] for r in records)
    assert result["metadata"]["total_cost"] == pytest.approx(float(expected_cost(model, provider, records)), abs=1e-7)

    # The map calls read consecutive parts; the last call (the reduce) received every partial answer.
    *maps, reduce = sorted(records, key=lambda r: r["seq"])
    for part in range(1, chunks + 1):
        assert sum(f"This is part {part} of {chunks}" in request_text(r) for r in maps) == 1
    merged = request_text(reduce)
    assert "Merge the partial answers" in merged
    for part in range(1, chunks + 1):
        assert f'<partial_answer part=\\"{part}\\">' in merged
        # The emulator's answer quotes the first words it read: "This is part N of M ...".
        assert f"first words: 'This is part {part} of {chunks}" in merged
    assert "[emulated" in result["results"]["summary"]


def test_every_turn_of_the_transcript_reaches_a_map_call(capped):
    text = long_meeting()
    analyze_transcript_task(text, "openai", "gpt-4o-mini", None, {"summary": "Provide a brief summary"})
    documents = "\n".join(r["body"]["messages"][1]["content"] for r in capped.requests("openai"))
    missing = [turn for turn in text.split("\n") if turn.strip() and turn not in documents]
    assert missing == []


def test_partial_answers_too_long_for_one_reduce_are_merged_hierarchically(capped):
    # Answers of 3,000 tokens each: only three fit one reduce request of a 16,000-token context.
    capped.configure(pad_output_tokens=3000)
    result = analyze_transcript_task(long_meeting(), "gemini", "gemini-2.5-flash", None,
                                     {"summary": "Provide a brief summary"})
    stats = capped.stats()
    assert stats["rejected_over_context"] == 0 and stats["max_prompt_tokens_seen"] <= LIMIT
    assert result["errors"] == {}
    meta = result["metadata"]["tasks"]["summary"]
    records = sorted(capped.requests("gemini"), key=lambda r: r["seq"])
    reduces = [r for r in records if "Merge the partial answers" in request_text(r)]
    assert len(reduces) >= 3  # at least two levels: several group merges, then the final one
    assert meta["calls"] == len(records) == meta["chunks"] + len(reduces)
    assert result["metadata"]["total_cost"] == pytest.approx(
        float(expected_cost("gemini-2.5-flash", "gemini", records)), abs=1e-7)


def test_a_model_context_override_caps_requests_too(settings, emulator):
    settings.MODEL_CONTEXT_OVERRIDES_RAW = f"claude-haiku-4-5={LIMIT}"
    emulator.configure(max_context_per_model={"claude-haiku-4-5": LIMIT})
    result = analyze_transcript_task(long_meeting(), "anthropic", "claude-haiku-4-5", None,
                                     {"summary": "Provide a brief summary", "topics": "List the topics"})
    assert result["errors"] == {}
    assert emulator.stats()["rejected_over_context"] == 0
    assert all(meta["chunks"] > 1 for meta in result["metadata"]["tasks"].values())


@pytest.mark.django_db(transaction=True)
def test_long_job_through_the_api_and_worker_reports_chunks_calls_and_cost(capped, alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("Bed015.txt") + "\n" + transcript("covid_2.txt"),
        "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Provide a brief summary", "decisions": "List the decisions"},
    }, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()
    assert data["status"] == "finished", data
    assert capped.stats()["rejected_over_context"] == 0
    tasks = data["result"]["metadata"]["tasks"]
    records = capped.requests("openai")
    assert sum(t["calls"] for t in tasks.values()) == len(records)
    for meta in tasks.values():
        assert meta["chunks"] > 1 and meta["calls"] == meta["chunks"] + 1
    assert data["result"]["metadata"]["total_cost"] == pytest.approx(
        float(expected_cost("gpt-4o-mini", "openai", records)), abs=1e-7)


def test_openai_requests_fit_even_counted_as_chars_over_4(capped):
    # o200k reads these meetings at ~4.4 characters a token: planned with the real count alone, a chunk
    # filling the context would be ~10% over it at chars/4. A small output limit leaves no slack to hide that.
    config = run_config(provider="openai", model="gpt-4o-mini", max_output_tokens=64)
    outcomes = run_analysis(transcript=long_meeting(), config=config,
                            tasks=[TaskSpec(name="summary", prompt="Provide a brief summary")])
    assert outcomes[0].ok, outcomes[0].error
    stats = capped.stats()
    assert stats["rejected_over_context"] == 0
    assert stats["max_prompt_tokens_seen"] <= LIMIT - 64
    # ...and the chunks are not needlessly small: the largest request uses most of the room.
    assert stats["max_prompt_tokens_seen"] > 0.9 * LIMIT


@pytest.mark.parametrize("provider,model", MODELS + [("openai", "llama-3-70b"), ("mistral", "x")])
def test_planning_counts_are_never_below_chars_over_4(provider, model):
    from analysis.engine.tokens import context_tokens

    for text in (transcript("TS3010a.txt"), "Grad F: OK . {vocalsound} Uh . " * 200, "会议纪要：决定周五发布。" * 300,
                 "x" * 10_001):
        assert context_tokens(text, provider=provider, model=model) >= -(-len(text) // 4)
