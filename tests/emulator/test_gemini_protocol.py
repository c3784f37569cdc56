"""The Gemini wire protocol on its own: request parsing (camelCase and snake_case), the candidate and its
usage metadata, google.rpc error bodies, and its routes (model in the path, countTokens, methods it
does not emulate)."""

from __future__ import annotations

import pytest

from emulator.gemini_protocol import GEMINI
from emulator.prompt import BadRequest, Prompt, Usage

PATH = "/v1beta/models/{}:generateContent"


def test_parse_takes_the_model_from_the_path_and_both_spellings() -> None:
    prompt = GEMINI.parse({"systemInstruction": {"parts": [{"text": "Be brief."}]},
                           "contents": ["Transcript", {"role": "model", "parts": [{"text": "ok"}, {"inlineData": {}}]},
                                        {"parts": [{"text": "Question"}]}, 42],
                           "generationConfig": {"maxOutputTokens": 32}}, "gemini-2.5-pro")
    assert (prompt.provider, prompt.model, prompt.max_output) == ("gemini", "gemini-2.5-pro", 32)
    assert [(s.role, s.text) for s in prompt.segments] == [
        ("system", "Be brief."), ("user", "Transcript"), ("assistant", "ok"), ("user", "Question")]
    snake = GEMINI.parse({"system_instruction": "Be brief.", "contents": ["x"],
                          "generation_config": {"max_output_tokens": 7}}, "m")
    assert (snake.segments[0].role, snake.max_output) == ("system", 7)
    with pytest.raises(BadRequest, match="contents is not specified"):
        GEMINI.parse({"contents": []}, "m")


def test_the_candidate_counts_cached_inside_prompt_and_thoughts_outside_candidates() -> None:
    body = GEMINI.response(Prompt("gemini", "gemini-2.5-flash", []), "hi", "STOP",
                           Usage(prompt=100, output=10, cached=40, reasoning=5))
    usage = body["usageMetadata"]
    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["thoughtsTokenCount"]) == (100, 10, 5)
    assert usage["cachedContentTokenCount"] == 40 and usage["totalTokenCount"] == 115
    assert body["candidates"] == [{"finishReason": "STOP", "index": 0,
                                   "content": {"role": "model", "parts": [{"text": "hi"}]}}]
    assert body["modelVersion"] == "gemini-2.5-flash"
    plain = GEMINI.response(Prompt("gemini", "m", []), "hi", "STOP", Usage(prompt=3, output=1))["usageMetadata"]
    assert "cachedContentTokenCount" not in plain and "thoughtsTokenCount" not in plain


def test_blocked_answers_have_no_text_part() -> None:
    blocked = GEMINI.response(Prompt("gemini", "m", []), None, "SAFETY", Usage(prompt=3, output=0))
    (candidate,) = blocked["candidates"]
    assert "content" not in candidate and candidate["safetyRatings"][0]["blocked"] is True
    assert "candidatesTokenCount" not in blocked["usageMetadata"]
    prompt_blocked = GEMINI.response(Prompt("gemini", "m", []), None, "SAFETY", Usage(prompt=3, output=0),
                                     prompt_blocked=True)
    assert "candidates" not in prompt_blocked and prompt_blocked["promptFeedback"]["blockReason"] == "SAFETY"
    assert (GEMINI.blocked_text, GEMINI.finish["blocked"]) == (None, "SAFETY")


def test_error_bodies_tell_the_quota_and_the_delay_in_details() -> None:
    def details(**kw: object) -> dict[str, dict]:
        return {d["@type"].rsplit(".", 1)[1]: d for d in GEMINI.error_body(429, **kw)["error"]["details"]}

    assert details() == {"RetryInfo": {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}}
    assert details(retry_after=0.5)["RetryInfo"]["retryDelay"] == "0.5s"
    per_day = details(code="per_day", model="gemini-2.5-pro")
    assert set(per_day) == {"QuotaFailure", "Help"}  # come back tomorrow: no delay to wait
    violation = per_day["QuotaFailure"]["violations"][0]
    assert "PerDay" in violation["quotaId"] and violation["quotaDimensions"]["model"] == "gemini-2.5-pro"
    assert set(details(code="per_day", retry_after=60)) == {"QuotaFailure", "Help", "RetryInfo"}
    assert details(code="per_minute")["QuotaFailure"]["violations"][0]["quotaValue"] == "10"
    assert GEMINI.error_body(503)["error"] == {"code": 503, "status": "UNAVAILABLE",
                                              "message": "The model is overloaded. Please try again later."}
    assert GEMINI.error_body(409)["error"]["status"] == "FAILED_PRECONDITION"
    assert GEMINI.error_body(599)["error"]["status"] == "INTERNAL"
    assert GEMINI.context_error(12, 10)["error"]["status"] == "INVALID_ARGUMENT"


def test_the_retry_delay_goes_in_a_header_only_when_asked(call, state) -> None:
    state.add_faults([{"kind": "status", "status": 429, "retry_after": 4, "provider": "gemini"},
                      {"kind": "status", "status": 429, "retry_after": 4, "retry_after_header": True}])
    body = {"contents": ["hello"]}
    first, second = (call("POST", PATH.format("gemini-2.5-flash"), body) for _ in range(2))
    assert "retry-after" not in first.headers and first.body["error"]["details"][-1]["retryDelay"] == "4s"
    assert second.headers["retry-after"] == "4"


def test_routes_read_the_model_from_the_path(call, state) -> None:
    answer = call("POST", "/v1/models/gemini%2D2.5-flash:generateContent", {"contents": ["hello"]})
    assert answer.status == 200 and answer.body["modelVersion"] == "gemini-2.5-flash"
    assert state.snapshot_requests()[-1]["model"] == "gemini-2.5-flash"
    counted = call("POST", "/v1beta/models/gemini-2.5-flash:countTokens",
                   {"generateContentRequest": {"contents": ["abcdefghij"]}})
    assert counted.body == {"totalTokens": 3, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}]}
    assert call("POST", "/v1beta/models/m:countTokens", {}).body["error"]["status"] == "INVALID_ARGUMENT"
    unsupported = call("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", {"contents": ["x"]})
    assert unsupported.status == 404
    assert unsupported.body["error"]["message"] == "Method streamGenerateContent is not supported by the emulator."
    assert len(state.snapshot_requests()) == 1


def test_the_models_list_answers_on_v1beta_and_on_v1_with_a_google_key(call) -> None:
    listed = call("GET", "/v1beta/models").body
    assert [m["name"] for m in listed["models"]][0] == "models/gemini-2.5-flash"
    assert call("GET", "/v1/models", headers={"x-goog-api-key": "g"}).body == listed
    # A Google key wins over Anthropic's headers on the shared path.
    assert call("GET", "/v1/models", headers={"x-goog-api-key": "g", "x-api-key": "a"}).body == listed
