"""The Anthropic wire protocol on its own: request parsing, the message and its usage, error bodies,
caching at cache_control breakpoints, count_tokens and the models list."""

from __future__ import annotations

import pytest

from emulator.anthropic_protocol import ANTHROPIC
from emulator.caching import PrefixCache
from emulator.prompt import BadRequest, Prompt, Usage

BREAKPOINT = {"type": "ephemeral"}


def test_parse_reads_the_system_blocks_and_their_breakpoints() -> None:
    prompt = ANTHROPIC.parse({"model": "claude-sonnet-4-6", "max_tokens": 64,
                              "system": [{"type": "text", "text": "Be brief.", "cache_control": BREAKPOINT}],
                              "messages": [{"role": "user", "content": "Transcript"},
                                           {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]})
    assert (prompt.model, prompt.max_output) == ("claude-sonnet-4-6", 64)
    assert [(s.role, s.text, s.cache_breakpoint) for s in prompt.segments] == [
        ("system", "Be brief.", True), ("user", "Transcript", False), ("assistant", "ok", False)]
    assert ANTHROPIC.parse({"model": "m", "max_tokens": 1, "system": "plain",
                            "messages": [{"content": "x"}]}).segments[0].role == "system"


@pytest.mark.parametrize("body, message", [
    ({"max_tokens": 5, "messages": [{"content": "x"}]}, "model: Field required"),
    ({"model": "m", "messages": [{"content": "x"}]}, "max_tokens: Field required"),
    ({"model": "m", "max_tokens": 5}, "messages: Field required"),
    ({"model": "m", "max_tokens": 5, "messages": [{"content": "x"}], "stream": True}, "does not stream"),
    ({"model": "m", "max_tokens": 5, "messages": [[]]}, "messages: each message must be an object"),
])
def test_parse_refuses_what_the_api_refuses(body: dict, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        ANTHROPIC.parse(body)


def test_the_message_counts_input_without_cache_reads_and_writes() -> None:
    body = ANTHROPIC.response(Prompt("anthropic", "claude-haiku-4-5", []), "hi", "end_turn",
                              Usage(prompt=100, output=10, cached=30, cache_write=20, reasoning=4))
    usage = body["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == \
        (50, 30, 20)
    assert usage["output_tokens"] == 14 and usage["output_tokens_details"] == {"thinking_tokens": 4}
    assert usage["cache_creation"]["ephemeral_5m_input_tokens"] == 20
    assert body["content"] == [{"type": "text", "text": "hi", "citations": None}] and "stop_details" not in body
    refused = ANTHROPIC.response(Prompt("anthropic", "m", []), "", "refusal", Usage(prompt=5, output=0))
    assert refused["content"] == [] and refused["stop_details"]["type"] == "refusal"
    assert "output_tokens_details" not in refused["usage"]


def test_error_bodies() -> None:
    overloaded = ANTHROPIC.error_body(529)
    assert overloaded["type"] == "error" and overloaded["request_id"].startswith("req_emu")
    assert overloaded["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    credit = ANTHROPIC.error_body(400, code="credit_balance")["error"]
    assert credit["type"] == "invalid_request_error" and "credit balance is too low" in credit["message"]
    assert "details" not in credit
    assert "regain access" in ANTHROPIC.error_body(400, code="spend_limit")["error"]["message"]
    spend = ANTHROPIC.error_body(429, code="enforced_spend_limit_reached")["error"]
    assert spend["type"] == "rate_limit_error" and spend["details"] == {"error_code": "enforced_spend_limit_reached"}
    assert "monthly spend limit" in spend["message"]
    assert ANTHROPIC.error_body(403, code="other", message="no")["error"] == {
        "type": "permission_error", "message": "no", "details": {"error_code": "other"}}
    assert ANTHROPIC.error_body(507)["error"]["type"] == "api_error"
    assert ANTHROPIC.context_error(9, 8)["error"]["message"] == "prompt is too long: 9 tokens > 8 maximum"
    assert ANTHROPIC.id_headers()["request-id"].startswith("req_emu")


def test_schema_is_output_config_format() -> None:
    schema = {"type": "object"}
    assert ANTHROPIC.schema({"output_config": {"format": {"type": "json_schema", "schema": schema}}}) == schema
    assert ANTHROPIC.schema({"output_config": {}}) is None and ANTHROPIC.schema({}) is None


def test_caching_writes_then_reads_up_to_the_last_breakpoint() -> None:
    cache = PrefixCache()
    cfg = {"cached_tokens": "auto"}

    def ask(model: str, question: str) -> Prompt:
        return ANTHROPIC.parse({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "word " * 1400, "cache_control": BREAKPOINT},
            {"type": "text", "text": question}]}]})

    assert ANTHROPIC.cache_usage(ask("claude-sonnet-4-6", "Summary?"), cfg, cache) == (0, 1750)
    assert ANTHROPIC.cache_usage(ask("claude-sonnet-4-6", "Action items?"), cfg, cache) == (1750, 0)
    # Haiku 4.5 caches from 4096 tokens: below that, nothing either way.
    assert ANTHROPIC.cache_usage(ask("claude-haiku-4-5", "Summary?"), cfg, cache) == (0, 0)
    no_breakpoint = ANTHROPIC.parse({"model": "claude-sonnet-4-6", "max_tokens": 5,
                                     "messages": [{"content": "word " * 1400}]})
    assert ANTHROPIC.cache_usage(no_breakpoint, cfg, cache) == (0, 0)


def test_configured_cache_writes_fit_beside_the_reads() -> None:
    prompt = ANTHROPIC.parse({"model": "m", "max_tokens": 5, "messages": [{"content": "x" * 400}]})  # 100 tokens
    assert ANTHROPIC.cache_usage(prompt, {"cached_tokens": 70, "cache_write_tokens": 0.5}, PrefixCache()) == (70, 30)
    assert ANTHROPIC.cache_usage(prompt, {"cached_tokens": 0, "cache_write_tokens": 20}, PrefixCache()) == (0, 20)


def test_count_tokens_and_the_models_list(call, state) -> None:
    counted = call("POST", "/v1/messages/count_tokens", {"model": "claude-haiku-4-5",
                                                          "messages": [{"role": "user", "content": "abcdefgh"}]})
    assert (counted.status, counted.body) == (200, {"input_tokens": 2})
    bad = call("POST", "/v1/messages/count_tokens", raw=b"[]")
    assert bad.status == 400 and bad.body["type"] == "error"
    assert state.snapshot_requests() == []  # counting is no generate call
    listed = call("GET", "/v1/models", headers={"anthropic-version": "2023-06-01"}).body
    assert listed["first_id"] == "claude-sonnet-4-6" and listed["has_more"] is False
    assert call("GET", "/v1/models", headers={"x-api-key": "k"}).body == listed
