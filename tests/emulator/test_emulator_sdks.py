"""The emulator, driven through the real provider SDKs (openai, anthropic, google-genai).

Each test talks HTTP to an in-process Emulator on loopback: the point is that the
official SDKs parse what it sends (answers, usage, errors) exactly as they would a
real provider's, so the app's provider layer can be tested without the internet.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from typing import Any, Callable

import pytest

# Run from anywhere: the emulator package sits at the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import anthropic  # noqa: E402
import httpx2  # noqa: E402
import openai  # noqa: E402
from google import genai  # noqa: E402
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

from emulator import Emulator, faults  # noqa: E402

SYSTEM = "You analyse transcripts. Answer briefly."
TRANSCRIPT = "Alice: we ship on Friday.\nBob: the budget is tight but fine."
QUESTION = "Provide a brief summary"


def tokens(*texts: str) -> int:
    return math.ceil(sum(len(t) for t in texts) / 4)


PROMPT_TOKENS = tokens(SYSTEM, TRANSCRIPT, QUESTION)
PROMPT_WORDS = len(f"{SYSTEM} {TRANSCRIPT} {QUESTION}".split())  # 21


@pytest.fixture(scope="module")
def emu() -> Any:
    server = Emulator(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(emu: Emulator) -> None:
    emu.reset()


@pytest.fixture(scope="module")
def oa(emu: Emulator) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def an(emu: Emulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emu.url, api_key="sk-ant-test", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def gm(emu: Emulator) -> genai.Client:
    # Kept in a variable for the module: a temporary client can be closed under a call.
    return genai.Client(api_key="g-test", http_options=genai_types.HttpOptions(
        base_url=emu.url, api_version="v1beta", timeout=10_000))


@pytest.fixture(scope="module")
def gm_v1(emu: Emulator) -> genai.Client:
    return genai.Client(api_key="g-test", http_options=genai_types.HttpOptions(
        base_url=emu.url, api_version="v1", timeout=10_000))


def call_openai(oa: openai.OpenAI, model: str = "gpt-4o-mini", **kw: Any) -> Any:
    return oa.chat.completions.create(model=model, messages=[
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{TRANSCRIPT}\n{QUESTION}"}], **kw)


def call_anthropic(an: anthropic.Anthropic, model: str = "claude-haiku-4-5",
                   max_tokens: int = 1000) -> Any:
    return an.messages.create(
        model=model, max_tokens=max_tokens,
        system=[{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": TRANSCRIPT, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": QUESTION}]}])


def call_gemini(gm: genai.Client, model: str = "gemini-2.5-flash", max_out: int | None = None) -> Any:
    return gm.models.generate_content(
        model=model, contents=f"{TRANSCRIPT}\n{QUESTION}",
        config=genai_types.GenerateContentConfig(system_instruction=SYSTEM,
                                                 max_output_tokens=max_out))


# ----------------------------------------------------------------------------- answers


def test_openai_answer_and_usage(emu: Emulator, oa: openai.OpenAI) -> None:
    r = call_openai(oa)
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert text.startswith("[emulated openai/gpt-4o-mini] Answer to: 'Provide a brief summary'")
    assert f"read {PROMPT_WORDS} words" in text and "first words: 'Alice: we ship on Friday. Bob:'" in text
    assert r.usage.prompt_tokens == PROMPT_TOKENS
    assert r.usage.completion_tokens == tokens(text)
    assert r.usage.total_tokens == PROMPT_TOKENS + tokens(text)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0
    assert [m.id for m in oa.models.list()][:2] == ["gpt-4o", "gpt-4o-mini"]


def test_anthropic_answer_and_usage(an: anthropic.Anthropic) -> None:
    m = call_anthropic(an)
    assert m.stop_reason == "end_turn" and m.type == "message"
    text = m.content[0].text
    assert "Answer to: 'Provide a brief summary'" in text and "[emulated anthropic/claude-haiku-4-5]" in text
    assert m.usage.input_tokens == PROMPT_TOKENS
    assert m.usage.output_tokens == tokens(text)
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0


@pytest.mark.parametrize("client_name", ["gm", "gm_v1"])
def test_gemini_answer_and_usage(emu: Emulator, request: pytest.FixtureRequest, client_name: str) -> None:
    gm = request.getfixturevalue(client_name)
    r = call_gemini(gm)
    assert r.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert "[emulated gemini/gemini-2.5-flash] Answer to: 'Provide a brief summary'" in r.text
    u = r.usage_metadata
    assert u.prompt_token_count == PROMPT_TOKENS
    assert u.candidates_token_count == tokens(r.text)
    assert u.total_token_count == PROMPT_TOKENS + tokens(r.text)
    assert u.cached_content_token_count is None and u.thoughts_token_count is None
    assert r.model_version == "gemini-2.5-flash"
    version = "v1beta" if client_name == "gm" else "v1"
    assert emu.requests()[-1]["path"] == f"/{version}/models/gemini-2.5-flash:generateContent"
    assert gm.models.count_tokens(model="gemini-2.5-flash", contents="abcdefgh").total_tokens == 2


# ----------------------------------------------------------------------------- usage knobs


def test_usage_knobs_openai(emu: Emulator, oa: openai.OpenAI) -> None:
    emu.configure(cached_tokens=0.5, reasoning_tokens=7)
    r = call_openai(oa)
    visible = tokens(r.choices[0].message.content)
    assert r.usage.prompt_tokens == PROMPT_TOKENS  # includes the cached part
    assert r.usage.prompt_tokens_details.cached_tokens == PROMPT_TOKENS // 2
    assert r.usage.completion_tokens == visible + 7  # includes reasoning
    assert r.usage.completion_tokens_details.reasoning_tokens == 7


def test_usage_knobs_anthropic(emu: Emulator, an: anthropic.Anthropic) -> None:
    emu.configure(cached_tokens=10, cache_write_tokens=4, reasoning_tokens=5)
    m = call_anthropic(an)
    assert m.usage.cache_read_input_tokens == 10
    assert m.usage.cache_creation_input_tokens == 4
    assert m.usage.input_tokens == PROMPT_TOKENS - 14  # excludes reads and writes
    assert m.usage.cache_creation.ephemeral_5m_input_tokens == 4
    assert m.usage.output_tokens == tokens(m.content[0].text) + 5
    assert m.usage.output_tokens_details.thinking_tokens == 5


def test_usage_knobs_gemini(emu: Emulator, gm: genai.Client) -> None:
    emu.configure(cached_tokens=10, reasoning_tokens=7)
    r = call_gemini(gm)
    u = r.usage_metadata
    assert u.prompt_token_count == PROMPT_TOKENS  # includes the cached part
    assert u.cached_content_token_count == 10
    assert u.candidates_token_count == tokens(r.text)  # excludes thoughts
    assert u.thoughts_token_count == 7
    assert u.total_token_count == PROMPT_TOKENS + tokens(r.text) + 7


def test_auto_prefix_caching(emu: Emulator, oa: openai.OpenAI, an: anthropic.Anthropic,
                             gm: genai.Client) -> None:
    """cached_tokens="auto": a repeated prefix of >= 1024 tokens is reported as cached."""
    emu.configure(cached_tokens="auto")
    transcript = "word " * 1400  # 7000 chars: 1750 tokens
    for question, expect_cached in (("Summary?", 0), ("Action items?", 1664)):
        r = oa.chat.completions.create(model="gpt-4o", messages=[
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": transcript},
            {"role": "user", "content": question}])
        # 1024 + 128*k tokens, the longest step inside the shared system + transcript.
        assert r.usage.prompt_tokens_details.cached_tokens == expect_cached
        g = gm.models.generate_content(model="gemini-2.5-flash", contents=[transcript, question],
                                       config=genai_types.GenerateContentConfig(
                                           system_instruction=SYSTEM))
        assert (g.usage_metadata.cached_content_token_count or 0) == expect_cached
    shared = tokens(SYSTEM, transcript)
    for question, read, write in (("Summary?", 0, shared), ("Action items?", shared, 0)):
        m = an.messages.create(model="claude-sonnet-4-6", max_tokens=500, system=SYSTEM,
                               messages=[{"role": "user", "content": [
                                   {"type": "text", "text": transcript,
                                    "cache_control": {"type": "ephemeral"}},
                                   {"type": "text", "text": question}]}])
        assert (m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (read, write)
        assert m.usage.input_tokens == tokens(SYSTEM, transcript, question) - read - write
    # Below Haiku 4.5's 4096-token minimum nothing is cached, and nothing fails.
    m = an.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=[
        {"role": "user", "content": [{"type": "text", "text": transcript,
                                      "cache_control": {"type": "ephemeral"}}]}])
    assert (m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (0, 0)


# ----------------------------------------------------------------------------- limits


def test_max_output_tokens_truncates(oa: openai.OpenAI, an: anthropic.Anthropic,
                                     gm: genai.Client) -> None:
    r = call_openai(oa, max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content) == 20 and r.usage.completion_tokens == 5
    r = call_openai(oa, max_tokens=6)  # the older parameter name
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 6
    m = call_anthropic(an, max_tokens=5)
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 5
    g = call_gemini(gm, max_out=5)
    assert g.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    assert len(g.text) == 20 and g.usage_metadata.candidates_token_count == 5


def test_context_limit_errors(emu: Emulator, oa: openai.OpenAI, an: anthropic.Anthropic,
                              gm: genai.Client) -> None:
    emu.configure(max_context=PROMPT_TOKENS - 1, max_context_per_model={"gpt-4o": 10_000})
    with pytest.raises(openai.BadRequestError) as oe:
        call_openai(oa)
    assert oe.value.code == "context_length_exceeded"
    assert f"maximum context length is {PROMPT_TOKENS - 1} tokens" in oe.value.message
    assert call_openai(oa, model="gpt-4o").choices[0].finish_reason == "stop"  # per-model cap wins
    with pytest.raises(anthropic.BadRequestError) as ae:
        call_anthropic(an)
    assert ae.value.api_message == f"prompt is too long: {PROMPT_TOKENS} tokens > {PROMPT_TOKENS - 1} maximum"
    with pytest.raises(genai_errors.ClientError) as ge:
        call_gemini(gm)
    assert ge.value.code == 400 and ge.value.status == "INVALID_ARGUMENT"
    assert f"The input token count ({PROMPT_TOKENS}) exceeds" in ge.value.message
    stats = emu.stats()
    assert stats["rejected_over_context"] == 3
    assert stats["max_prompt_tokens_seen"] == PROMPT_TOKENS


# ----------------------------------------------------------------------------- faults


def test_openai_status_faults(emu: Emulator, oa: openai.OpenAI) -> None:
    emu.add_faults([
        {"kind": "status", "status": 429, "retry_after": 1, "provider": "openai"},
        faults.insufficient_quota("openai"),
        faults.server_error("openai", 503),
        {"kind": "status", "status": 401, "provider": "openai"},
    ])
    with pytest.raises(openai.RateLimitError) as e:
        call_openai(oa)
    assert e.value.code == "rate_limit_exceeded" and e.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.RateLimitError) as e:
        call_openai(oa)
    assert e.value.code == "insufficient_quota" and e.value.type == "insufficient_quota"
    with pytest.raises(openai.InternalServerError) as e:
        call_openai(oa)
    assert e.value.status_code == 503
    with pytest.raises(openai.AuthenticationError):
        call_openai(oa)
    assert call_openai(oa).choices[0].finish_reason == "stop"  # faults used up
    assert [r["status"] for r in emu.requests()] == [429, 429, 503, 401, 200]


def test_openai_sdk_retry_honours_retry_after_ms(emu: Emulator) -> None:
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=2, timeout=10)
    emu.add_faults([faults.rate_limit("openai", retry_after_ms=50, times=2)])
    assert call_openai(client).choices[0].finish_reason == "stop"
    assert [r["status"] for r in emu.requests()] == [429, 429, 200]
    times = [r["time"] for r in emu.requests()]
    assert all(later - earlier >= 0.04 for earlier, later in zip(times, times[1:]))  # it waited as told


def test_anthropic_status_faults(emu: Emulator, an: anthropic.Anthropic) -> None:
    emu.add_faults([
        faults.overloaded("anthropic"),
        faults.rate_limit("anthropic", retry_after=3),
        faults.spend_limit("anthropic"),
        faults.insufficient_quota("anthropic"),
    ])
    with pytest.raises(anthropic.OverloadedError) as e:
        call_anthropic(an)
    assert e.value.type == "overloaded_error" and e.value.status_code == 529
    with pytest.raises(anthropic.RateLimitError) as e:
        call_anthropic(an)
    assert e.value.type == "rate_limit_error" and e.value.response.headers["retry-after"] == "3"
    with pytest.raises(anthropic.RateLimitError) as e:
        call_anthropic(an)
    assert e.value.error_code == "enforced_spend_limit_reached"
    assert "retry-after" not in e.value.response.headers
    with pytest.raises(anthropic.BadRequestError) as e:
        call_anthropic(an)
    assert "credit balance is too low" in e.value.api_message


def test_gemini_status_faults(emu: Emulator, gm: genai.Client) -> None:
    emu.add_faults([
        {"kind": "status", "status": 429, "retry_after": 2, "provider": "gemini"},
        faults.insufficient_quota("gemini"),  # per-day quota, no RetryInfo
        faults.server_error("gemini", 503),
    ])
    with pytest.raises(genai_errors.ClientError) as e:
        call_gemini(gm)
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED"
    details = e.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"} in details
    with pytest.raises(genai_errors.ClientError) as e:
        call_gemini(gm)
    types_ = {d["@type"].rsplit(".", 1)[1]: d for d in e.value.details["error"]["details"]}
    assert "RetryInfo" not in types_
    assert "PerDay" in types_["QuotaFailure"]["violations"][0]["quotaId"]
    with pytest.raises(genai_errors.ServerError) as e:
        call_gemini(gm)
    assert e.value.code == 503 and e.value.status == "UNAVAILABLE"


CALLS: dict[str, Callable[[Any], Any]] = {
    "openai": call_openai, "anthropic": call_anthropic, "gemini": call_gemini,
}
CLIENTS = {"openai": "oa", "anthropic": "an", "gemini": "gm"}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_transport_faults(emu: Emulator, request: pytest.FixtureRequest, provider: str) -> None:
    client = request.getfixturevalue(CLIENTS[provider])
    call = CALLS[provider]
    emu.add_faults([faults.malformed(provider), faults.drop(provider),
                    faults.delay(0.3, provider)])
    # A 200 whose body is not JSON: every SDK lets json's own error escape.
    with pytest.raises(json.JSONDecodeError):
        call(client)
    expected_drop = {"openai": openai.APIConnectionError, "anthropic": anthropic.APIConnectionError,
                     "gemini": httpx2.RemoteProtocolError}[provider]
    with pytest.raises(expected_drop):
        call(client)
    started = time.monotonic()
    call(client)  # delayed, then a normal answer
    assert time.monotonic() - started >= 0.3
    assert [r["status"] for r in emu.requests()] == [200, None, 200]
    assert emu.stats()["dropped"] == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_reply_answers_the_given_text(emu: Emulator, request: pytest.FixtureRequest, provider: str) -> None:
    client = request.getfixturevalue(CLIENTS[provider])
    text = '<script>alert(1)</script> [x](javascript:alert(2))'
    emu.add_faults([faults.reply(text, provider)])
    written = {"openai": lambda a: a.choices[0].message.content, "anthropic": lambda a: a.content[0].text,
               "gemini": lambda a: a.text}[provider]
    assert written(CALLS[provider](client)) == text
    assert "[emulated" in written(CALLS[provider](client))  # once only


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_truncated_and_blocked(emu: Emulator, request: pytest.FixtureRequest, provider: str) -> None:
    client = request.getfixturevalue(CLIENTS[provider])
    call = CALLS[provider]
    emu.add_faults([faults.truncated(provider), faults.blocked(provider)])
    cut, blocked = call(client), call(client)
    if provider == "openai":
        assert cut.choices[0].finish_reason == "length" and cut.choices[0].message.content
        assert blocked.choices[0].finish_reason == "content_filter"
        assert blocked.choices[0].message.content == ""
    elif provider == "anthropic":
        assert cut.stop_reason == "max_tokens" and cut.content[0].text
        assert blocked.stop_reason == "refusal" and blocked.content == []
        assert blocked.stop_details.type == "refusal"
    else:
        assert cut.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS and cut.text
        assert blocked.candidates[0].finish_reason == genai_types.FinishReason.SAFETY
        assert blocked.text is None and blocked.candidates[0].content is None


def test_gemini_prompt_blocked(emu: Emulator, gm: genai.Client) -> None:
    emu.add_faults([faults.blocked("gemini", where="prompt")])
    r = call_gemini(gm)
    assert not r.candidates and r.prompt_feedback.block_reason == genai_types.BlockedReason.SAFETY


def test_fault_matching_is_fifo_and_filtered(emu: Emulator, oa: openai.OpenAI,
                                             an: anthropic.Anthropic) -> None:
    emu.add_faults([
        {"kind": "status", "status": 500, "provider": "anthropic"},
        {"kind": "status", "status": 503, "match": "action items", "times": 2},
        {"kind": "status", "status": 502},
    ])
    with pytest.raises(openai.InternalServerError) as e:  # the 500 is Anthropic's only
        call_openai(oa)
    assert e.value.status_code == 502
    assert call_openai(oa).choices[0].finish_reason == "stop"  # 503 needs "action items"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as e:
            oa.chat.completions.create(model="gpt-4o", messages=[
                {"role": "user", "content": "List the action items"}])
        assert e.value.status_code == 503
    with pytest.raises(anthropic.InternalServerError) as ae:
        call_anthropic(an)
    assert ae.value.status_code == 500
    assert emu.faults() == [] and emu.stats()["faults_fired"] == 4


# ----------------------------------------------------------------------------- concurrency


def test_concurrent_calls_overlap(emu: Emulator, oa: openai.OpenAI, an: anthropic.Anthropic,
                                  gm: genai.Client) -> None:
    """12 calls (8 OpenAI, 2 Anthropic, 2 Gemini) at 1 s latency finish in about 1 s."""
    emu.configure(latency=1.0)
    jobs = [lambda: call_openai(oa)] * 8 + [lambda: call_anthropic(an)] * 2 + \
        [lambda: call_gemini(gm)] * 2
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(job: Callable[[], Any]) -> None:
        try:
            results.append(job())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(results) == 12
    assert time.monotonic() - started >= 1.0  # every call waited out its latency
    assert emu.stats()["in_flight_max"] >= 8  # at the same time, not one after another
