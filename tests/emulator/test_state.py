"""The shared state on its own: configuration merges and checks, the fault queue, the records and the
counters the control API shows, and what a reset keeps."""

from __future__ import annotations

import pytest

from emulator.prompt import Prompt, Segment
from emulator.state import DEFAULT_CONFIG, EmulatorState, redact_headers


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState({**DEFAULT_CONFIG, "max_context": 5000})


def prompt(provider: str = "openai", text: str = "hello") -> Prompt:
    return Prompt(provider, "m", [Segment("user", text)])


def test_configure_merges_per_model_caps_and_refuses_what_it_does_not_know(state: EmulatorState) -> None:
    state.configure({"max_context_per_model": {"a": 7, "b": "9"}})
    assert state.configure({"max_context_per_model": {"a": None}})["max_context_per_model"] == {"b": 9}
    assert state.configure({"max_context_per_model": None})["max_context_per_model"] == {}
    with pytest.raises(ValueError, match="unknown config keys"):
        state.configure({"latncy": 1})
    with pytest.raises(ValueError, match="max_context_per_model must be an object"):
        state.configure({"max_context_per_model": 5})
    with pytest.raises(ValueError, match="cached_tokens must be"):
        state.configure({"cached_tokens": "most"})
    for good in ("auto", 0.25, 100, None):
        assert state.configure({"cached_tokens": good})["cached_tokens"] == good


def test_snapshots_are_copies(state: EmulatorState) -> None:
    state.add_faults([{"kind": "drop"}])
    state.snapshot_config()["max_context_per_model"]["x"] = 1
    state.snapshot_faults()[0]["times"] = 99
    state.snapshot_stats()["requests"] = 99
    assert state.config["max_context_per_model"] == {}
    assert state.faults[0]["times"] == 1 and state.stats["requests"] == 0


def test_faults_are_taken_first_in_first_out_and_counted_down(state: EmulatorState) -> None:
    added = state.add_faults([{"kind": "status", "status": 500, "provider": "anthropic"},
                              {"kind": "status", "status": 503, "times": 2},
                              {"kind": "drop", "times": -1}])
    assert [f["id"] for f in added] == [1, 2, 3]  # ids keep growing across adds
    assert state.add_faults([{"kind": "truncated"}])[0]["id"] == 4
    taken = [state.take_fault(prompt("openai"))["id"] for _ in range(4)]
    assert taken == [2, 2, 3, 3]  # the anthropic one does not fit; -1 stays
    assert [f["id"] for f in state.snapshot_faults()] == [1, 3, 4]
    assert state.take_fault(prompt("anthropic"))["id"] == 1
    assert state.stats["faults_fired"] == 5
    state.clear_faults()
    assert state.take_fault(prompt()) is None and state.stats["faults_fired"] == 5


def test_a_bad_fault_in_a_batch_adds_none_of_it(state: EmulatorState) -> None:
    with pytest.raises(ValueError):
        state.add_faults([{"kind": "drop"}, {"kind": "nope"}])
    assert state.snapshot_faults() == []


def test_records_feed_the_counters(state: EmulatorState) -> None:
    state.record({"provider": "openai", "status": 200, "prompt_tokens": 10, "output_tokens": 4})
    state.record({"provider": "gemini", "status": 400, "prompt_tokens": 30, "rejected_over_context": True})
    state.record({"provider": "anthropic", "status": None, "prompt_tokens": 5})  # dropped
    stats = state.snapshot_stats()
    assert stats["requests"] == 3
    assert stats["by_provider"] == {"openai": 1, "anthropic": 1, "gemini": 1}
    assert stats["by_status"] == {"200": 1, "400": 1, "None": 1}
    assert (stats["prompt_tokens_total"], stats["output_tokens_total"]) == (10, 4)  # answered requests only
    assert stats["max_prompt_tokens_seen"] == 30
    assert (stats["rejected_over_context"], stats["dropped"]) == (1, 1)
    assert [r["seq"] for r in state.snapshot_requests()] == [1, 2, 3]
    assert [r["seq"] for r in state.snapshot_requests(provider="gemini")] == [2]
    assert [r["seq"] for r in state.snapshot_requests(since=1, limit=1)] == [3]


def test_max_recorded_keeps_the_newest_and_zero_keeps_none(state: EmulatorState) -> None:
    for _ in range(4):
        state.record({"provider": "openai", "status": 200})
    state.configure({"max_recorded": 2})
    assert [r["seq"] for r in state.snapshot_requests()] == [3, 4]
    state.configure({"max_recorded": 0})
    state.record({"provider": "openai", "status": 200})
    assert state.snapshot_requests() == [] and state.stats["requests"] == 5


def test_reset_restores_the_defaults_and_keeps_counting_requests_in_flight(state: EmulatorState) -> None:
    state.configure({"latency": 2.0, "max_context": 10})
    state.add_faults([{"kind": "drop"}])
    state.record({"provider": "openai", "status": 200})
    state.enter()
    state.enter()
    state.reset()
    assert (state.config["latency"], state.config["max_context"]) == (0.0, 5000)
    assert state.snapshot_faults() == [] and state.snapshot_requests() == []
    assert (state.stats["requests"], state.stats["in_flight"], state.stats["in_flight_max"]) == (0, 2, 2)
    state.leave()
    assert (state.stats["in_flight"], state.stats["in_flight_max"]) == (1, 2)
    state.record({"provider": "openai", "status": 200})
    assert state.snapshot_requests()[0]["seq"] == 2  # seq never restarts: since= stays meaningful


def test_redact_headers_hides_every_key_header_and_says_whether_one_was_sent() -> None:
    headers, present = redact_headers({"Authorization": "Bearer sk-1", "X-Goog-Api-Key": "g", "Accept": "*/*"})
    assert headers == {"authorization": "[REDACTED]", "x-goog-api-key": "[REDACTED]", "accept": "*/*"}
    assert present
    assert redact_headers({"x-api-key": ""}) == ({"x-api-key": "[REDACTED]"}, False)
    assert redact_headers({"Host": "h"}) == ({"host": "h"}, False)
