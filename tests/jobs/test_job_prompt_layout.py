"""Requests laid out for the providers' prompt caches, asserted on what reached the emulator:
system prompt, then the transcript, then the task's instruction last, the prefix byte-identical
across the tasks of a job; Anthropic's breakpoint on the transcript; OpenAI's prompt_cache_key."""

from __future__ import annotations

import json

import pytest

from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "actions": "List the action items", "risks": "Name the risks"}


def run(client, emulator, provider: str, model: str, text: str) -> list[dict]:
    """Run a job of the three TASKS on `text`; the bodies of the requests it sent, one a task."""
    response = client.post("/api/v1/jobs/analyze", {"transcript": text, "provider": provider, "model": model,
                                                    "tasks": TASKS, "system_prompt": "You are terse."},
                           format="json")
    assert response.status_code == 202, response.content
    work_burst()
    bodies = [r["body"] for r in emulator.requests(provider)]
    assert len(bodies) == len(TASKS)
    return bodies


def shared_prefixes(bodies: list[dict], prefix) -> set[bytes]:
    """The distinct prefixes (`prefix(body)`, canonical JSON) of the bodies: one when the cache can serve them all."""
    return {json.dumps(prefix(body), sort_keys=True, ensure_ascii=False).encode() for body in bodies}


def test_openai_shares_system_and_transcript_and_a_cache_key_per_transcript(alice_client, emulator):
    bodies = run(alice_client, emulator, "openai", "gpt-4o-mini", transcript("TS3010a.txt"))
    assert len(shared_prefixes(bodies, lambda b: b["messages"][:2])) == 1  # byte-identical system + transcript
    system, document = bodies[0]["messages"][:2]
    assert system == {"role": "system", "content": "You are terse."}
    assert "Project Manager" in document["content"] and not any(p in document["content"] for p in TASKS.values())
    assert sorted(b["messages"][-1]["content"] for b in bodies) == sorted(f"Task: {p}" for p in TASKS.values())
    keys = {b["prompt_cache_key"] for b in bodies}
    assert len(keys) == 1 and keys.pop().startswith("sr-")

    # Another transcript gets another key (the key is derived from the transcript).
    emulator.reset()
    again = run(alice_client, emulator, "openai", "gpt-4o-mini", transcript("ES2009b.txt"))
    other = {b["prompt_cache_key"] for b in again}
    assert len(other) == 1 and other.isdisjoint({bodies[0]["prompt_cache_key"]})


def test_anthropic_puts_the_cache_breakpoint_on_the_transcript_block(alice_client, emulator):
    bodies = run(alice_client, emulator, "anthropic", "claude-haiku-4-5", transcript("TS3010a.txt"))
    assert len(shared_prefixes(bodies, lambda b: [b["system"], b["messages"][0]["content"][0]])) == 1
    document, instruction = bodies[0]["messages"][0]["content"]
    assert document["cache_control"] == {"type": "ephemeral"} and "Project Manager" in document["text"]
    assert "cache_control" not in instruction
    assert all(b["messages"][0]["content"][-1]["text"].startswith("Task: ") for b in bodies)


def test_gemini_shares_the_system_instruction_and_the_transcript_part(alice_client, emulator):
    bodies = run(alice_client, emulator, "gemini", "gemini-2.5-flash", transcript("TS3010a.txt"))
    assert len(shared_prefixes(bodies, lambda b: [b["systemInstruction"], b["contents"][0]["parts"][0]])) == 1
    assert {b["contents"][0]["parts"][-1]["text"] for b in bodies} == {f"Task: {p}" for p in TASKS.values()}


def test_the_emulated_prefix_cache_serves_the_later_tasks(alice_client, emulator):
    """With prefix caching emulated, tasks after the first read the shared prefix from cache and pay less."""
    emulator.configure(cached_tokens="auto")
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Provide a brief summary"}}, format="json")
    work_burst()
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"actions": "List the action items"}}, format="json")
    work_burst()
    usage = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()["result"]["metadata"]["usage"]
    assert usage["cached_input_tokens"] >= 1024
