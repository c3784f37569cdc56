"""The OpenAI wire protocol on its own: request parsing, the completion and its usage, error bodies,
automatic prefix caching and the models endpoints."""

from __future__ import annotations

import pytest

from emulator.caching import PrefixCache
from emulator.openai_protocol import OPENAI
from emulator.prompt import BadRequest, Prompt, Segment, Usage


def test_parse_reads_roles_blocks_and_the_output_limit() -> None:
    prompt = OPENAI.parse({"model": "gpt-5", "max_completion_tokens": 50, "max_tokens": 9, "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": ["plain", {"type": "text", "text": "block"}, {"type": "image_url"},
                                     {"type": "tool_result", "content": [{"type": "text", "text": "nested"}]}]},
        {"role": "assistant", "content": None},
    ]})
    assert (prompt.provider, prompt.model, prompt.max_output) == ("openai", "gpt-5", 50)
    assert [(s.role, s.text) for s in prompt.segments] == [
        ("system", "Be brief."), ("user", "plain"), ("user", "block"), ("user", ""), ("user", "nested")]
    assert OPENAI.parse({"model": "m", "max_tokens": 9, "messages": [{"content": "x"}]}).max_output == 9
    assert OPENAI.parse({"model": "m", "max_tokens": "9", "messages": [{"content": "x"}]}).max_output is None


@pytest.mark.parametrize("body, message", [
    ({"messages": [{"content": "x"}]}, "you must provide a model parameter"),
    ({"model": "m", "messages": []}, "'messages' must be a non-empty array"),
    ({"model": "m", "messages": [{"content": "x"}], "stream": True}, "does not stream"),
    ({"model": "m", "messages": ["x"]}, "each message must be an object"),
    ({"model": "m", "messages": [{"content": 5}]}, "content must be a string or a list of blocks, got int"),
])
def test_parse_refuses_what_the_api_refuses(body: dict, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        OPENAI.parse(body)


def test_the_completion_counts_cached_inside_prompt_and_reasoning_inside_completion() -> None:
    body = OPENAI.response(Prompt("openai", "gpt-4o", []), "hi", "stop",
                           Usage(prompt=100, output=10, cached=40, reasoning=5))
    assert body["id"].startswith("chatcmpl-emu") and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi", "refusal": None, "annotations": []}
    assert body["usage"]["prompt_tokens"] == 100 and body["usage"]["prompt_tokens_details"]["cached_tokens"] == 40
    assert (body["usage"]["completion_tokens"], body["usage"]["total_tokens"]) == (15, 115)
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5


def test_error_bodies() -> None:
    limited = OPENAI.error_body(429, model="gpt-4o", retry_after=3)["error"]
    assert (limited["type"], limited["code"]) == ("requests", "rate_limit_exceeded")
    assert "for gpt-4o in organization" in limited["message"] and "try again in 3s" in limited["message"]
    quota = OPENAI.error_body(429, code="project_spend_limit_exceeded")["error"]
    assert (quota["type"], quota["code"]) == ("insufficient_quota", "project_spend_limit_exceeded")
    assert OPENAI.error_body(401)["error"]["code"] == "invalid_api_key"
    assert OPENAI.error_body(404, code="other", message="gone")["error"] == {
        "message": "gone", "type": "invalid_request_error", "param": None, "code": "other"}
    assert OPENAI.error_body(507)["error"] == {"message": "Error 507", "type": "server_error", "param": None,
                                              "code": None}
    assert OPENAI.error_body(418)["error"]["type"] == "invalid_request_error"
    too_long = OPENAI.context_error(120, 100)["error"]
    assert too_long["code"] == "context_length_exceeded" and "context length is 100 tokens" in too_long["message"]
    assert OPENAI.id_headers()["x-request-id"].startswith("req_emu")


def test_schema_is_only_a_json_schema_response_format() -> None:
    schema = {"type": "object"}
    assert OPENAI.schema({"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}) == schema
    assert OPENAI.schema({"response_format": {"type": "json_object"}}) is None
    assert OPENAI.schema({}) is None


def test_automatic_caching_reads_128_token_steps_of_a_prefix_seen_before() -> None:
    cache = PrefixCache()
    cfg = {"cached_tokens": "auto", "cache_ttl": 300.0}

    def ask(question: str) -> Prompt:
        return Prompt("openai", "gpt-4o", [Segment("user", "word " * 1400), Segment("user", question)])

    assert OPENAI.cache_usage(ask("Summary?"), cfg, cache) == (0, 0)
    assert OPENAI.cache_usage(ask("Action items?"), cfg, cache) == (1664, 0)  # 1024 + 5 * 128
    short = Prompt("openai", "gpt-4o", [Segment("user", "word " * 100)])
    assert OPENAI.cache_usage(short, cfg, cache) == (0, 0)  # under 1024 tokens nothing is cached
    assert OPENAI.cache_usage(short, {"cached_tokens": 0.5, "cache_write_tokens": 9}, cache) == (62, 0)


def test_models_say_the_context_cap_as_vllm_does(call, state) -> None:
    listed = call("GET", "/v1/models").body
    assert [m["id"] for m in listed["data"]][:2] == ["gpt-4o", "gpt-4o-mini"]
    assert "max_model_len" not in listed["data"][0]
    state.configure({"max_context": 8192})
    assert {m["max_model_len"] for m in call("GET", "/v1/models").body["data"]} == {8192}
    assert call("GET", "/v1/models/ft/gpt-4o").body == {"id": "gpt-4o", "object": "model", "created": 1700000000,
                                                         "owned_by": "emulator"}
