"""The emulator as a separate process (``python -m emulator``), driven over HTTP.

Workers run in other processes, so tests steer the emulator through its control plane
(/_emulator/...) with EmulatorClient; this checks that plane, the request recording
(with API keys redacted) and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402
import openai  # noqa: E402
from google import genai  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

from emulator import DEFAULT_CONFIG, EmulatorClient, faults  # noqa: E402


@pytest.fixture(scope="module")
def proc() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0",
                          "--max-context", "5000"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("emulator listening on http://127.0.0.1:"), line
        yield p, line.rsplit(" ", 1)[1]
    finally:
        p.terminate()
        p.wait(timeout=5)


@pytest.fixture(scope="module")
def ctl(proc: tuple[subprocess.Popen[str], str]) -> EmulatorClient:
    client = EmulatorClient(proc[1])
    client.wait_ready()
    return client


@pytest.fixture(autouse=True)
def _fresh(ctl: EmulatorClient) -> None:
    ctl.reset()


def test_cli_starts_with_its_options_as_defaults(ctl: EmulatorClient) -> None:
    assert ctl.health()
    assert ctl.config()["max_context"] == 5000
    ctl.configure(latency=0.25, max_context=10, max_context_per_model={"m1": 7, "m2": 9})
    ctl.configure(max_context_per_model={"m1": None})  # merged model by model; null removes
    cfg = ctl.config()
    assert (cfg["latency"], cfg["max_context"], cfg["max_context_per_model"]) == (0.25, 10, {"m2": 9})
    ctl.reset()  # back to what the CLI was started with
    cfg = ctl.config()
    assert (cfg["latency"], cfg["max_context"], cfg["max_context_per_model"]) == (0.0, 5000, {})
    assert set(cfg) == set(DEFAULT_CONFIG)


def test_recording_redacts_keys(ctl: EmulatorClient) -> None:
    oa = openai.OpenAI(base_url=ctl.openai_base_url, api_key="sk-secret-1", max_retries=0)
    an = anthropic.Anthropic(base_url=ctl.url, api_key="sk-ant-secret-2", max_retries=0)
    gm = genai.Client(api_key="g-secret-3", http_options=genai_types.HttpOptions(
        base_url=ctl.url, api_version="v1beta"))
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "one two"}])
    an.messages.create(model="claude-haiku-4-5", max_tokens=50,
                       messages=[{"role": "user", "content": "three four"}])
    gm.models.generate_content(model="gemini-2.5-flash", contents="five six seven")
    recs = ctl.requests()
    assert [(r["provider"], r["model"], r["path"], r["status"], r["prompt_tokens"]) for r in recs] == [
        ("openai", "gpt-4o-mini", "/v1/chat/completions", 200, 2),
        ("anthropic", "claude-haiku-4-5", "/v1/messages", 200, 3),
        ("gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent", 200, 4),
    ]
    assert recs[0]["body"]["messages"] == [{"role": "user", "content": "one two"}]
    assert recs[1]["body"]["max_tokens"] == 50
    assert recs[2]["body"]["contents"][0]["parts"][0]["text"] == "five six seven"
    assert recs[0]["headers"]["authorization"] == "[REDACTED]"
    # anthropic 2.x authenticates with "Authorization: Bearer", not x-api-key.
    assert recs[1]["headers"]["authorization"] == "[REDACTED]" and "x-api-key" not in recs[1]["headers"]
    assert recs[2]["headers"]["x-goog-api-key"] == "[REDACTED]"
    assert all(r["api_key_present"] for r in recs)
    assert "secret" not in json.dumps(recs)
    assert all(isinstance(r["time"], float) and r["seq"] > 0 for r in recs)
    assert [r["provider"] for r in ctl.requests(provider="anthropic")] == ["anthropic"]
    assert [r["seq"] for r in ctl.requests(since=recs[1]["seq"])] == [recs[2]["seq"]]
    stats = ctl.stats()
    assert stats["by_provider"] == {"openai": 1, "anthropic": 1, "gemini": 1}
    assert stats["requests"] == 3 and stats["by_status"] == {"200": 3}
    assert stats["max_prompt_tokens_seen"] == 4


def test_faults_over_http(ctl: EmulatorClient) -> None:
    added = ctl.add_faults([{"kind": "status", "status": 429, "retry_after": 1, "provider": "openai"},
                            faults.overloaded("anthropic", times=-1)])
    assert [f["kind"] for f in added] == ["status", "status"] and added[0]["id"] < added[1]["id"]
    assert len(ctl.faults()) == 2
    oa = openai.OpenAI(base_url=ctl.openai_base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    an = anthropic.Anthropic(base_url=ctl.url, api_key="x", max_retries=0)
    for _ in range(2):  # times=-1: every request until reset
        with pytest.raises(anthropic.OverloadedError):
            an.messages.create(model="claude-haiku-4-5", max_tokens=5,
                               messages=[{"role": "user", "content": "hi"}])
    assert [f["status"] for f in ctl.faults()] == [529]
    recs = ctl.requests()
    assert [r["status"] for r in recs] == [429, 529, 529]
    assert recs[0]["fault"]["status"] == 429
    assert ctl.stats()["faults_fired"] == 3
    ctl.reset()
    assert ctl.faults() == [] and ctl.requests() == [] and ctl.stats()["requests"] == 0


def test_control_plane_rejects_bad_input(ctl: EmulatorClient) -> None:
    with pytest.raises(ValueError, match="fault kind"):
        ctl.add_faults([{"kind": "explode"}])
    with pytest.raises(ValueError, match="status"):
        ctl.add_faults([{"kind": "status"}])
    with pytest.raises(ValueError, match="unknown config keys"):
        ctl.configure(latncy=1)
    assert ctl.faults() == []


def test_context_limit_from_cli_and_raw_http(ctl: EmulatorClient) -> None:
    """Plain HTTP, no SDK: the realistic error bodies, and unknown routes answer 404 JSON."""
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 20004}]})
    req = urllib.request.Request(ctl.url + "/v1/chat/completions", data=body.encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(req, timeout=5)
    err: dict[str, Any] = json.loads(e.value.read())
    assert e.value.code == 400
    assert err["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 5000 tokens" in err["error"]["message"]
    assert "resulted in 5001 tokens" in err["error"]["message"]
    assert ctl.stats()["rejected_over_context"] == 1
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(ctl.url + "/v2/nothing", timeout=5)
    assert e.value.code == 404 and "error" in json.loads(e.value.read())
