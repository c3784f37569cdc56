"""The one retry loop, through the real SDKs against the emulator's injected faults.

Every fault kind a provider sends ends with the right outcome and the number of
tries recorded; what cannot be fixed by waiting fails fast with one try and a
clear message; a provider's requested wait is honoured.
"""

from __future__ import annotations

import re

import pytest

from analysis.analyze import analyze_transcript_task
from emulator.server import faults
from tests.conftest import PROCESS_WAIT, wait_for

PROVIDERS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")]
LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}
TEXT = "Alice: We ship on Friday.\nBob: Then the demo is on Monday."


def rate_limit_without_delay(provider: str, times: int) -> dict:
    """A 429 that names no wait: no Retry-After header and, for Gemini, no RetryInfo in the body."""
    if provider == "gemini":
        return faults.status(429, "gemini", times=times, body={"error": {
            "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}})
    return faults.rate_limit(provider, times=times)


def run_one(provider: str, model: str) -> tuple[dict, dict]:
    """One task through the analysis function; (result document, that task's metadata)."""
    result = analyze_transcript_task(TEXT, provider, model, "", {"summary": "Provide a brief summary"})
    return result, result["metadata"]["tasks"]["summary"]


def wait_idle(emulator) -> None:
    """Let the emulator finish a request the client gave up on, so it is not recorded in the next test."""
    wait_for(lambda: not emulator.stats()["in_flight"], PROCESS_WAIT, "the emulator to finish the abandoned request")


def request_times(emulator, provider: str) -> list[float]:
    return [r["time"] for r in emulator.requests(provider)]


@pytest.mark.parametrize("provider,model", PROVIDERS)
@pytest.mark.parametrize("fault", [
    pytest.param(lambda p: rate_limit_without_delay(p, times=2), id="429-no-retry-after"),
    pytest.param(lambda p: faults.server_error(p, status=500, times=2), id="500"),
    pytest.param(lambda p: faults.overloaded(p, times=2), id="503-or-529"),
    pytest.param(lambda p: faults.drop(p, times=2), id="dropped-connection"),
    pytest.param(lambda p: faults.malformed(p, times=2), id="malformed-body"),
])
def test_transient_faults_are_retried_and_counted(emulator, provider, model, fault):
    emulator.add_faults(fault(provider))
    result, task = run_one(provider, model)
    assert result["errors"] == {}
    assert "Provide a brief summary" in result["results"]["summary"]
    assert task["tries"] == 3 and task["calls"] == 1
    assert len(emulator.requests(provider)) == 3  # our loop only: the SDKs retried nothing on their own
    assert task["last_error"].startswith(LABELS[provider])  # what the last failed try said


@pytest.mark.parametrize("body", [
    pytest.param('{"choices": []}', id="no-choices"),
    pytest.param('{"choices": ["text"]}', id="choice-not-an-object"),
    pytest.param('{"choices": [{"message": {"content": ["a", "list"]}, "finish_reason": "stop"}]}', id="content-list"),
    pytest.param('["not", "an", "object"]', id="json-array"),
])
def test_an_openai_answer_of_the_wrong_shape_is_malformed_and_retried(emulator, body):
    """The chat completion's JSON is read as JSON (no typed model of it): every shape it may wrongly take is a
    malformed answer, tried again, never a crash or an empty result."""
    emulator.add_faults(faults.malformed("openai", body_text=body, content_type="application/json", times=1))
    result, task = run_one("openai", "gpt-4o-mini")
    assert result["errors"] == {} and "Provide a brief summary" in result["results"]["summary"]
    assert task["tries"] == 2 and task["last_error"].startswith("OpenAI sent a response")


@pytest.mark.parametrize("provider,model", PROVIDERS)
def test_retry_after_is_waited_for_at_least_as_long_as_asked(emulator, provider, model):
    # Gemini says it in the body (RetryInfo.retryDelay "0.6s"), the others in the Retry-After header.
    emulator.add_faults(faults.rate_limit(provider, retry_after=0.6, times=1))
    result, task = run_one(provider, model)
    assert result["errors"] == {} and task["tries"] == 2
    first, second = request_times(emulator, provider)
    assert second - first >= 0.6  # our own backoff (0.05 s in tests) would have been much shorter


@pytest.mark.parametrize("provider,model", [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")])
def test_retry_after_ms_is_honoured(emulator, provider, model):
    emulator.add_faults(faults.status(429, provider, retry_after_ms=500, times=1))
    result, task = run_one(provider, model)
    assert task["tries"] == 2
    first, second = request_times(emulator, provider)
    assert second - first >= 0.5


@pytest.mark.parametrize("provider,model", PROVIDERS)
def test_a_request_that_takes_too_long_times_out_and_is_retried(emulator, settings, provider, model):
    settings.PROVIDER_REQUEST_TIMEOUT = 0.4
    emulator.add_faults(faults.delay(1.5, provider, times=1))
    result, task = run_one(provider, model)
    assert result["errors"] == {} and task["tries"] == 2  # the slow answer was given up on, the retry answered
    wait_idle(emulator)


@pytest.mark.parametrize("provider,model,fault,message", [
    ("openai", "gpt-4o-mini", faults.status(401, "openai"), "OpenAI rejected the API key (401)"),
    ("anthropic", "claude-haiku-4-5", faults.status(401, "anthropic"), "Anthropic rejected the API key (401)"),
    ("gemini", "gemini-2.5-flash", faults.status(401, "gemini"), "Gemini rejected the API key (401)"),
    ("openai", "gpt-4o-mini", faults.status(400, "openai"), "OpenAI error 400"),
    ("anthropic", "claude-haiku-4-5", faults.status(403, "anthropic"), "Anthropic refused access (403)"),
    ("gemini", "gemini-2.5-flash", faults.status(404, "gemini"), "Gemini error 404"),
    ("openai", "gpt-4o-mini", faults.insufficient_quota("openai"), "OpenAI account is out of quota or credit (429)"),
    ("openai", "gpt-4o-mini", faults.spend_limit("openai"), "OpenAI account is out of quota or credit (429)"),
    ("anthropic", "claude-haiku-4-5", faults.insufficient_quota("anthropic"),
     "Anthropic account is out of quota or credit (400)"),
    ("anthropic", "claude-haiku-4-5", faults.spend_limit("anthropic"),
     "Anthropic account is out of quota or credit (429)"),
    ("anthropic", "claude-haiku-4-5", faults.status(402, "anthropic"), "Anthropic account is out of quota or credit (402)"),
    ("gemini", "gemini-2.5-flash", faults.insufficient_quota("gemini"), "Gemini account is out of quota or credit (429)"),
])
def test_what_waiting_cannot_fix_fails_fast_with_one_try(emulator, provider, model, fault, message):
    emulator.add_faults({**fault, "times": -1})
    result, task = run_one(provider, model)
    assert result["results"] == {}
    assert result["errors"]["summary"].startswith(message), result["errors"]
    assert task["tries"] == 1 and task["calls"] == 0
    assert len(emulator.requests(provider)) == 1


def test_gemini_per_minute_quota_is_a_rate_limit_and_retried(emulator):
    emulator.add_faults(faults.status(429, "gemini", code="per_minute", retry_after=0.2, times=1))
    result, task = run_one("gemini", "gemini-2.5-flash")
    assert result["errors"] == {} and task["tries"] == 2


@pytest.mark.parametrize("provider,model", PROVIDERS)
def test_giving_up_says_who_what_how_many_times_and_how_long(emulator, settings, provider, model):
    # A rate limit is waited out within the time budget, whatever PROVIDER_MAX_TRIES says (it bounds only
    # malformed answers): with a 0.3 s budget and 0.1 s waits, the task gives up by time after a few tries.
    settings.PROVIDER_MAX_TRIES = 2
    settings.PROVIDER_RETRY_BASE_DELAY = 0.1
    settings.PROVIDER_RETRY_MAX_DELAY = 0.1
    settings.PROVIDER_RETRY_MAX_TOTAL = 0.3
    emulator.add_faults(rate_limit_without_delay(provider, times=-1))
    result, task = run_one(provider, model)
    error = result["errors"]["summary"]
    assert re.match(rf"{LABELS[provider]} rate limit: gave up after \d+ attempts over 0 s \(last error: ", error), error
    assert task["tries"] > 2 and len(emulator.requests(provider)) == task["tries"]


def test_a_malformed_answer_is_still_bounded_by_a_count_of_tries(emulator, settings):
    settings.PROVIDER_MAX_TRIES = 3
    settings.PROVIDER_RETRY_BASE_DELAY = 0.01
    emulator.add_faults(faults.malformed("openai", times=-1))
    result, task = run_one("openai", "gpt-4o-mini")
    assert "gave up after 3 attempts" in result["errors"]["summary"] and task["tries"] == 3


def test_a_wait_longer_than_the_task_may_take_gives_up_at_once(emulator, settings):
    """Retry-After beyond the task's time bound: waiting less would only earn another 429."""
    settings.PROVIDER_RETRY_MAX_TOTAL = 2.0
    emulator.add_faults(faults.rate_limit("openai", retry_after=30, times=-1))
    result, task = run_one("openai", "gpt-4o-mini")
    assert task["tries"] == 1 and len(emulator.requests("openai")) == 1
    assert result["errors"]["summary"].startswith("OpenAI rate limit: gave up after 1 attempt over 0 s")


def test_the_task_time_is_bounded_across_retries(emulator, settings):
    settings.PROVIDER_RETRY_MAX_TOTAL = 1.5
    settings.PROVIDER_MAX_TRIES = 100
    emulator.add_faults(faults.server_error("anthropic", status=503, times=-1))
    result, task = run_one("anthropic", "claude-haiku-4-5")
    # It went on retrying through its time budget, then stopped: it gives up only when the next wait (at most
    # PROVIDER_RETRY_MAX_DELAY, 0.5 s in tests/settings.py) would end past the budget, so the task's own
    # latency (its metadata, not a stopwatch here) is at least 1.5 - 0.5 s.
    assert task["latency_s"] >= 1.0, task
    assert "Anthropic server error: gave up after" in result["errors"]["summary"]
    assert task["tries"] == len(emulator.requests("anthropic")) > 3


@pytest.mark.parametrize("provider,model,fault,reason", [
    ("openai", "gpt-4o-mini", faults.blocked("openai"), "content_filter"),
    ("anthropic", "claude-haiku-4-5", faults.blocked("anthropic"), "refusal"),
    ("gemini", "gemini-2.5-flash", faults.blocked("gemini"), "SAFETY"),
    ("gemini", "gemini-2.5-flash", faults.blocked("gemini", where="prompt"), "SAFETY"),
])
def test_a_blocked_answer_is_an_error_flagged_blocked_and_not_retried(emulator, provider, model, fault, reason):
    emulator.add_faults(fault)
    result, task = run_one(provider, model)
    assert result["results"] == {}
    assert result["errors"]["summary"] == f"{LABELS[provider]} blocked the answer ({reason})"
    assert task["blocked"] is True and task["tries"] == 1 and task["calls"] == 1  # answered, so billed
