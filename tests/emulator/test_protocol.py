"""The generate path the three protocols share (emulator/protocol.py), through the route table without a
socket: what is recorded, faults, the context cap, output budgets, padding and structured answers."""

from __future__ import annotations

import json

from emulator.state import EmulatorState

CHAT = "/v1/chat/completions"


def chat(text: str = "Alice: hi\nSummarize", **extra: object) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def test_a_request_is_recorded_with_its_keys_redacted(call, state: EmulatorState) -> None:
    answer = call("POST", CHAT + "?key=abc", chat(), headers={"Authorization": "Bearer sk-1"})
    assert answer.status == 200
    (rec,) = state.snapshot_requests()
    assert (rec["provider"], rec["model"], rec["path"], rec["status"], rec["finish_reason"]) == \
        ("openai", "gpt-4o-mini", CHAT, 200, "stop")
    assert rec["headers"] == {"authorization": "[REDACTED]"} and rec["api_key_present"]
    assert rec["body"] == chat() and rec["prompt_tokens"] == 5
    assert rec["output_tokens"] == answer.body["usage"]["completion_tokens"]
    assert rec["duration_s"] >= 0 and "fault" not in rec
    assert state.stats["in_flight"] == 0 and state.stats["in_flight_max"] == 1


def test_a_body_that_is_not_json_is_the_providers_400_and_recorded_as_text(call, state: EmulatorState) -> None:
    answer = call("POST", CHAT, raw=b"{not json")
    assert answer.status == 400 and "could not parse the JSON body" in answer.body["error"]["message"]
    assert call("POST", CHAT, [1, 2]).body["error"]["message"] == "the request body must be a JSON object"
    assert [r["body"] for r in state.snapshot_requests()] == ["{not json", [1, 2]]
    assert [r["prompt_tokens"] for r in state.snapshot_requests()] == [None, None]


def test_transport_faults(call, state: EmulatorState) -> None:
    state.add_faults([{"kind": "drop"}, {"kind": "malformed"},
                      {"kind": "malformed", "body_text": "<html>", "content_type": "text/html"}])
    assert call("POST", CHAT, chat()) is None
    cut = call("POST", CHAT, chat())
    assert cut.status == 200 and cut.content_type == "application/json"
    assert cut.body.startswith('{"id": "emulated-malformed"')  # JSON cut off: kept as text
    assert (call("POST", CHAT, chat()).body, state.snapshot_requests()[-1]["status"]) == ("<html>", 200)
    assert state.stats["dropped"] == 1 and state.stats["faults_fired"] == 3
    assert state.snapshot_requests()[0]["fault"] == {"kind": "drop", "provider": None, "id": 1}


def test_a_status_fault_sends_its_headers_and_body(call, state: EmulatorState) -> None:
    state.add_faults([{"kind": "status", "status": 429, "retry_after": 1.5, "retry_after_ms": 1500,
                       "headers": {"x-ratelimit-remaining-requests": 0}},
                      {"kind": "status", "status": 503, "body": "upstream connect error"},
                      {"kind": "status", "status": 500, "body": {"detail": "custom"}}])
    limited = call("POST", CHAT, chat())
    assert limited.status == 429 and limited.body["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["retry-after"] == "1.5" and limited.headers["retry-after-ms"] == "1500"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0" and "x-request-id" in limited.headers
    text = call("POST", CHAT, chat())
    assert (text.status, text.body, text.content_type) == (503, "upstream connect error", "text/plain; charset=utf-8")
    assert call("POST", CHAT, chat()).body == {"detail": "custom"}


def test_the_per_model_cap_wins_over_the_global_one(call, state: EmulatorState) -> None:
    state.configure({"max_context": 4, "max_context_per_model": {"gpt-4o": 0}})
    over = call("POST", CHAT, chat())
    assert over.status == 400 and over.body["error"]["code"] == "context_length_exceeded"
    assert state.snapshot_requests()[-1]["rejected_over_context"]
    assert call("POST", CHAT, chat(model="gpt-4o")).status == 200  # 0 for a model: no cap for it
    assert state.stats["rejected_over_context"] == 1


def test_the_output_budget_covers_reasoning(call, state: EmulatorState) -> None:
    state.configure({"reasoning_tokens": 3})
    usage = call("POST", CHAT, chat(max_completion_tokens=5)).body["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3
    assert usage["completion_tokens"] == 5  # 2 visible + 3 reasoning
    starved = call("POST", CHAT, chat(max_completion_tokens=2)).body
    assert starved["choices"][0]["message"]["content"] == "" and starved["choices"][0]["finish_reason"] == "length"
    assert starved["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_padding_and_truncation(call, state: EmulatorState) -> None:
    state.configure({"pad_output_tokens": 300})
    padded = call("POST", CHAT, chat()).body
    assert padded["usage"]["completion_tokens"] == 300
    content = padded["choices"][0]["message"]["content"]
    assert len(content) == 1200 and content.startswith("[emulated openai/gpt-4o-mini]") and " lorem ipsum" in content
    state.add_faults([{"kind": "truncated"}])
    cut = call("POST", CHAT, chat()).body["choices"][0]
    assert cut["finish_reason"] == "length" and len(cut["message"]["content"]) == 600


def test_a_blocked_answer_may_carry_the_faults_text(call, state: EmulatorState) -> None:
    state.add_faults([{"kind": "blocked"}, {"kind": "blocked", "text": "I can't help with that."}])
    first, second = (call("POST", CHAT, chat()).body["choices"][0] for _ in range(2))
    assert (first["finish_reason"], first["message"]["content"]) == ("content_filter", "")
    assert (second["finish_reason"], second["message"]["content"]) == ("content_filter", "I can't help with that.")


def test_a_schema_is_answered_with_json_and_structured_faults_break_it(call, state: EmulatorState) -> None:
    schema = {"type": "object", "properties": {"summary": {"type": "string"}, "n": {"type": "integer"}}}
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    content = call("POST", CHAT, body).body["choices"][0]["message"]["content"]
    assert json.loads(content) == {"summary": "emulated summary", "n": 1}
    state.add_faults([{"kind": "invalid_json"}, {"kind": "schema_break"}, {"kind": "truncated"}])
    assert call("POST", CHAT, body).body["choices"][0]["message"]["content"] == '{"summary": "cut off here'
    assert json.loads(call("POST", CHAT, body).body["choices"][0]["message"]["content"])["summary"] == 12345
    truncated = call("POST", CHAT, body).body["choices"][0]
    assert truncated["finish_reason"] == "length" and "[emulated openai/gpt-4o-mini]" in truncated["message"]["content"]


def test_a_reply_fault_says_exactly_its_text_in_a_normal_answer(call, state: EmulatorState) -> None:
    schema = {"type": "object", "properties": {"terms": {"type": "array", "items": {"type": "string"}}}}
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    state.add_faults([{"kind": "reply", "text": '{"terms": ["zephyr"]}', "match": "Summarize"}])
    answer = call("POST", CHAT, body).body
    assert answer["choices"][0]["message"]["content"] == '{"terms": ["zephyr"]}'
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["usage"]["completion_tokens"] == 6
    # Once: the next request is answered as usual.
    assert json.loads(call("POST", CHAT, body).body["choices"][0]["message"]["content"]) == \
        {"terms": ["emulated terms", "emulated terms"]}


def test_turns_marked_by_meeting_are_cited_with_their_meeting(call, state: EmulatorState) -> None:
    citation = {"type": "object", "properties": {"transcript": {"type": "string"}, "turn": {"type": "integer"},
                                                  "quote": {"type": "string"}}}
    schema = {"type": "object", "properties": {"citations": {"type": "array", "items": citation}}}
    text = ("[M2 T7] Alice: we ship the handset on the fourteenth of March\n"
            "[M3 T40] [00:01:02] Bob: and the price stays where it is for now")
    body = chat(text, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    content = json.loads(call("POST", CHAT, body).body["choices"][0]["message"]["content"])
    assert content == {"citations": [{"transcript": "M2", "turn": 7, "quote": "we ship the handset on"}]}
    # A single transcript's citation schema (no `transcript`) gets none.
    plain = {"type": "object", "properties": {"turn": {"type": "integer"}, "quote": {"type": "string"}}}
    body = chat(text, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"citations": {"type": "array", "items": plain}}}}})
    assert "transcript" not in json.loads(call("POST", CHAT, body).body["choices"][0]["message"]["content"])[
        "citations"][0]
