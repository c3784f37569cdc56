"""The control plane's endpoints in this process (test_emulator_control.py drives them over HTTP
through EmulatorClient): their answers to bad input, the filters of /requests, clearing faults."""

from __future__ import annotations


def test_bad_input_is_a_400_naming_the_problem(call) -> None:
    not_json = call("POST", "/_emulator/config", raw=b"{oops")
    assert (not_json.status, not_json.body) == (400, {"error": "body is not JSON"})
    assert call("POST", "/_emulator/config", [1]).body == {"error": "config body must be a JSON object"}
    assert "unknown config keys" in call("POST", "/_emulator/config", {"latncy": 1}).body["error"]
    assert call("POST", "/_emulator/faults", {"kind": "nope"}).status == 400
    assert call("GET", "/_emulator/requests?since=x").status == 400
    missing = call("DELETE", "/_emulator/stats")
    assert (missing.status, missing.body) == (404, {"error": "no control endpoint DELETE /_emulator/stats"})


def test_health_answers_any_method_and_names_tolerate_slashes(call) -> None:
    assert [call(m, "/_emulator/health").body for m in ("GET", "POST", "DELETE")] == [{"ok": True}] * 3
    assert call("GET", "/_emulator/stats/").body["requests"] == 0


def test_faults_are_added_one_or_many_listed_and_cleared(call, state) -> None:
    assert [f["id"] for f in call("POST", "/_emulator/faults", {"kind": "drop"}).body] == [1]
    assert len(call("POST", "/_emulator/faults", [{"kind": "drop"}, {"kind": "truncated"}]).body) == 2
    assert [f["kind"] for f in call("GET", "/_emulator/faults").body] == ["drop", "drop", "truncated"]
    assert call("DELETE", "/_emulator/faults").body == {"ok": True}
    assert call("GET", "/_emulator/faults").body == [] and state.snapshot_faults() == []


def test_requests_filter_by_provider_since_and_limit(call) -> None:
    for path, body in (("/v1/chat/completions", {"model": "m", "messages": [{"content": "a"}]}),
                       ("/v1beta/models/g:generateContent", {"contents": ["b"]}),
                       ("/v1/chat/completions", {"model": "m", "messages": [{"content": "c"}]})):
        assert call("POST", path, body).status == 200
    seqs = [r["seq"] for r in call("GET", "/_emulator/requests").body]
    assert seqs == [1, 2, 3]
    assert [r["seq"] for r in call("GET", "/_emulator/requests?provider=openai").body] == [1, 3]
    assert [r["seq"] for r in call("GET", "/_emulator/requests?since=1&limit=1").body] == [3]
    assert call("POST", "/_emulator/reset", {}).body == {"ok": True}
    assert call("GET", "/_emulator/requests").body == [] and call("GET", "/_emulator/stats").body["requests"] == 0
