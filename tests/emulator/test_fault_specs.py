"""The fault language on its own: what parse_fault accepts, normalises and refuses, what the presets
build, and which requests a fault fits."""

from __future__ import annotations

import pytest

from emulator.fault_specs import FAULT_KINDS, faults, fits, parse_fault
from emulator.prompt import Prompt, Segment


def prompt(provider: str = "openai", model: str = "gpt-4o", text: str = "List the action items") -> Prompt:
    return Prompt(provider, model, [Segment("system", "You analyse transcripts."), Segment("user", text)])


def test_a_parsed_fault_is_a_normalised_copy() -> None:
    raw = {"kind": "status", "status": 429, "retry_after": 1}
    spec = parse_fault(raw, seq=7)
    assert spec == {"kind": "status", "status": 429, "retry_after": 1, "times": 1, "provider": None, "id": 7}
    assert raw == {"kind": "status", "status": 429, "retry_after": 1}  # the caller's dict is left alone
    assert parse_fault({"kind": "drop", "times": None}, seq=1)["times"] == -1  # null: forever
    assert parse_fault({"kind": "drop", "times": -1, "provider": "gemini"}, seq=2)["provider"] == "gemini"


@pytest.mark.parametrize("raw, message", [
    (["kind", "drop"], "must be a JSON object"),
    ({"kind": "explode"}, "fault kind must be one of"),
    ({}, "fault kind must be one of"),
    ({"kind": "drop", "provider": "mistral"}, "fault provider must be one of"),
    ({"kind": "status"}, "needs an error 'status'"),
    ({"kind": "status", "status": 200}, "needs an error 'status'"),
    ({"kind": "status", "status": 600}, "needs an error 'status'"),
    ({"kind": "status", "status": "429"}, "needs an error 'status'"),
    ({"kind": "delay"}, "needs 'seconds'"),
    ({"kind": "delay", "seconds": "1"}, "needs 'seconds'"),
    ({"kind": "drop", "times": 0}, "positive int or -1"),
    ({"kind": "drop", "times": -2}, "positive int or -1"),
    ({"kind": "drop", "times": 1.5}, "positive int or -1"),
])
def test_a_bad_fault_is_refused_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(raw, seq=1)


def test_every_kind_parses_including_the_structured_ones() -> None:
    extra = {"status": {"status": 500}, "delay": {"seconds": 0.1}, "reply": {"text": "<b>hi</b>"}}
    assert [parse_fault({"kind": k, **extra.get(k, {})}, seq=1)["kind"] for k in FAULT_KINDS] == list(FAULT_KINDS)
    assert {"invalid_json", "schema_break", "bad_citation", "misquote"} <= set(FAULT_KINDS)


def test_presets_build_the_variant_each_provider_answers() -> None:
    assert faults.insufficient_quota("openai")["code"] == "insufficient_quota"
    assert (faults.insufficient_quota("anthropic")["status"], faults.insufficient_quota("anthropic")["code"]) == \
        (400, "credit_balance")
    assert faults.insufficient_quota("gemini")["code"] == "per_day"
    assert faults.spend_limit()["code"] == "enforced_spend_limit_reached"
    assert faults.spend_limit("openai")["code"] == "organization_spend_limit_exceeded"
    assert faults.overloaded()["status"] == 529 and faults.overloaded("gemini")["status"] == 503
    assert faults.rate_limit("openai", retry_after=2, times=3) == {
        "kind": "status", "provider": "openai", "times": 3, "status": 429, "retry_after": 2}
    # Options left out are not written as nulls, and the filters appear only when given.
    assert faults.drop() == {"kind": "drop", "provider": None, "times": 1}
    assert faults.blocked("gemini", where="prompt", match="x", model="m") == {
        "kind": "blocked", "provider": "gemini", "times": 1, "match": "x", "model": "m", "where": "prompt"}


def test_presets_are_valid_faults() -> None:
    presets = [faults.status(418), faults.rate_limit(), faults.insufficient_quota(), faults.spend_limit(),
               faults.overloaded(), faults.server_error(status=502), faults.malformed(body_text="{"),
               faults.drop(), faults.delay(0.5), faults.truncated(), faults.blocked()]
    assert [parse_fault(p, seq=n)["id"] for n, p in enumerate(presets)] == list(range(len(presets)))


def test_fits_filters_on_provider_model_and_prompt_text() -> None:
    def spec(**kw: object) -> dict:
        return parse_fault({"kind": "drop", **kw}, seq=1)

    assert fits(spec(), prompt())
    assert fits(spec(provider="openai"), prompt()) and not fits(spec(provider="anthropic"), prompt())
    assert fits(spec(model="gpt-4o"), prompt()) and not fits(spec(model="gpt-4o-mini"), prompt())
    assert fits(spec(match="action items"), prompt())
    assert fits(spec(match="analyse transcripts"), prompt())  # the system prompt is part of the text
    assert not fits(spec(match="Action Items"), prompt())  # a plain, case-sensitive substring
    assert not fits(spec(provider="gemini", match="action items"), prompt())
