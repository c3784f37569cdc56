"""Named OpenAI-compatible endpoints beside the three providers (OPENAI_COMPATIBLE_ENDPOINTS).

The endpoints point at the emulator's OpenAI wire protocol, as a local llama.cpp, vLLM or Ollama server
would be configured; the emulator counts the calls it holds at once (in_flight_max).
"""

from __future__ import annotations

import json
import logging
from decimal import ROUND_HALF_UP, Decimal

import pytest

from analysis.engine.openai_compatible import EndpointConfigError, parse_endpoints, probe_context_window
from tests.conftest import run_manage, transcript, work_burst, worker_env
from tests.jobs.faults import TEXT, WorkerProcess, task_prompts, wait_all_final

pytestmark = pytest.mark.django_db(transaction=True)

KEY_A, KEY_B = "sk-local-a-3f9e1c", "sk-local-b-77d2aa"


def endpoints_json(emulator, **overrides) -> str:
    return json.dumps([
        {"name": "local-a", "base_url": emulator.openai_base_url, "api_key": KEY_A, "max_in_flight": 2,
         "models": {"qwen3-8b": {"context_window": 32_768, "prices": {"input": 0.10, "output": 0.40}}}},
        {"name": "local-b", "base_url": emulator.openai_base_url, "api_key": KEY_B, "context_window": 16_384,
         "max_in_flight": overrides.get("b_slots", 3)},
    ])


@pytest.fixture
def two_endpoints(settings, emulator):
    settings.OPENAI_COMPATIBLE_ENDPOINTS = parse_endpoints(endpoints_json(emulator))
    return settings.OPENAI_COMPATIBLE_ENDPOINTS


def submit(client, provider: str, model: str, tasks: dict[str, str], text: str = TEXT) -> str:
    response = client.post("/api/v1/jobs/analyze", {"transcript": text, "provider": provider, "model": model,
                                                    "tasks": tasks, "reuse": False}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def test_two_endpoints_and_openai_in_one_deployment(alice_client, emulator, two_endpoints, caplog):
    caplog.set_level(logging.DEBUG)
    jobs = {
        ("openai", "gpt-4o-mini"): submit(alice_client, "openai", "gpt-4o-mini", {"summary": "Summarize it [o]"}),
        ("local-a", "qwen3-8b"): submit(alice_client, "local-a", "qwen3-8b", {"summary": "Summarize it [a]"}),
        ("local-b", "llama3.2:3b"): submit(alice_client, "local-b", "llama3.2:3b", {"summary": "Summarize it [b]"}),
    }
    work_burst()
    docs = {key: alice_client.get(f"/api/v1/jobs/{job_id}").json() for key, job_id in jobs.items()}
    assert all(doc["status"] == "finished" for doc in docs.values()), docs
    for (provider, model), doc in docs.items():
        assert (doc["result"]["metadata"]["provider"], doc["result"]["metadata"]["model"]) == (provider, model)
    sent_models = sorted(r["body"]["model"] for r in emulator.requests("openai"))
    assert sent_models == ["gpt-4o-mini", "llama3.2:3b", "qwen3-8b"]

    # local-a has prices: the bill by hand from the usage the emulator sent (0.10 in, 0.40 out per million).
    [record] = [r for r in emulator.requests("openai") if r["body"]["model"] == "qwen3-8b"]
    expected = (record["prompt_tokens"] * Decimal("0.10") + record["output_tokens"] * Decimal("0.40")) / 1_000_000
    meta_a = docs[("local-a", "qwen3-8b")]["result"]["metadata"]
    assert meta_a["total_cost"] == float(expected.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)) > 0
    assert "price_unknown" not in meta_a
    # local-b has none: cost 0, and it says the price is unknown.
    meta_b = docs[("local-b", "llama3.2:3b")]["result"]["metadata"]
    assert meta_b["total_cost"] == 0 and meta_b["price_unknown"] is True

    # The keys appear nowhere a user or an operator reads.
    listing = alice_client.get("/api/v1/models").content.decode()
    everything = listing + json.dumps(list(docs.values())) + caplog.text
    assert KEY_A not in everything and KEY_B not in everything
    assert '"provider":"local-a"' in listing.replace(" ", "") and '"name":"qwen3-8b"' in listing.replace(" ", "")
    assert KEY_A not in repr(two_endpoints["local-a"])


def test_an_endpoint_lists_only_its_models_and_is_a_valid_provider_filter(alice_client, two_endpoints):
    response = alice_client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": "local-a",
                                                          "model": "gpt-4o", "tasks": {"s": "Summarize"}},
                                 format="json")
    assert response.status_code == 400 and "qwen3-8b" in response.json()["error"]["fields"]["model"][0]
    models = alice_client.get("/api/v1/models?provider=local-a").json()["models"]
    assert [(m["name"], m["context_window"], m["input"], m["endpoint"]) for m in models] == [
        ("qwen3-8b", 32_768, 0.1, True)]
    unknown = alice_client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": "local-c", "model": "m",
                                                         "tasks": {"s": "Summarize"}}, format="json")
    assert unknown.status_code == 400 and "local-a" in unknown.json()["error"]["fields"]["provider"][0]


def test_errors_name_the_endpoint_not_openai(alice_client, emulator, two_endpoints, settings):
    from emulator.server import faults

    settings.PROVIDER_RETRY_BASE_DELAY = 0.05
    emulator.add_faults([faults.status(401, "openai", model="llama3.2:3b", times=-1)])
    job_id = submit(alice_client, "local-b", "llama3.2:3b", {"summary": "Summarize"})
    work_burst()
    doc = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert doc["status"] == "failed"
    error = doc["result"]["errors"]["summary"]
    assert error.startswith("local-b rejected the API key (401)"), error
    assert "OpenAI" not in doc["error"] and KEY_B not in json.dumps(doc)


def test_a_long_transcript_is_chunked_to_the_endpoint_context_two_calls_at_a_time(alice_client, emulator, settings):
    """A 2-slot server of 16,384 tokens: no request over the context (the emulator refuses more), never more than
    2 calls at once although CHUNK_CONCURRENCY is 16, none timed out or retried, the answer merged."""
    settings.OPENAI_COMPATIBLE_ENDPOINTS = parse_endpoints(endpoints_json(emulator, b_slots=2))
    emulator.configure(max_context=16_384, latency=0.1)
    job_id = submit(alice_client, "local-b", "llama3.2:3b", {"summary": "Summarize"}, text=transcript("TS3010a.txt") * 12)
    work_burst()
    doc = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert doc["status"] == "finished", doc
    task = doc["result"]["metadata"]["tasks"]["summary"]
    assert task["chunks"] > 2 and task["tries"] == task["calls"] == len(emulator.requests("openai"))
    assert all(r["status"] == 200 for r in emulator.requests("openai"))
    assert emulator.stats()["in_flight_max"] == 2


def test_context_window_read_once_from_the_server(emulator):
    """"context_window": "auto": vLLM's /v1/models max_model_len (llama.cpp's /props n_ctx is tried first)."""
    emulator.configure(max_context=12_000)
    assert probe_context_window(emulator.openai_base_url, "x") == 12_000
    [endpoint] = parse_endpoints(json.dumps([{"name": "vllm", "base_url": emulator.openai_base_url,
                                              "context_window": "auto"}])).values()
    assert endpoint.model_info("any").context_window == 12_000
    emulator.configure(max_context=50_000)
    assert endpoint.model_info("any").context_window == 12_000  # read once, not per job


def test_an_endpoint_with_two_slots_never_gets_a_third_call_across_two_workers(alice_client, emulator, tmp_path,
                                                                               settings):
    """Three jobs of four tasks on two worker processes: 12 calls, at most 2 at the server at any moment."""
    emulator.configure(latency=0.3)
    config = endpoints_json(emulator)
    settings.OPENAI_COMPATIBLE_ENDPOINTS = parse_endpoints(config)
    job_ids = [submit(alice_client, "local-a", "qwen3-8b", task_prompts(f"slots{n}", 4)) for n in range(3)]
    env = {"OPENAI_COMPATIBLE_ENDPOINTS": config, "TASK_CONCURRENCY": "4", "PROVIDER_MAX_IN_FLIGHT": "32"}
    with (WorkerProcess(emulator, tmp_path, "a", **env) as first,
          WorkerProcess(emulator, tmp_path, "b", **env) as second):
        finished = wait_all_final(job_ids)
    assert {job.status for job in finished.values()} == {"finished"}, [first.output(), second.output()]
    stats = emulator.stats()
    assert len(emulator.requests("openai")) == 12
    assert stats["in_flight_max"] == 2, stats  # the limit was reached, and never passed


# ─────────────────────────────────── configuration ───────────────────────────────────


@pytest.mark.parametrize(("value", "message"), [
    ("[{", "not valid JSON"),
    ('[{"name": "Local LLM", "base_url": "http://127.0.0.1:8080/v1"}]', "name must match"),
    ('[{"name": "openai", "base_url": "http://127.0.0.1:8080/v1"}]', "built-in provider"),
    ('[{"name": "x", "base_url": "127.0.0.1:8080"}]', "base_url must be an http"),
    ('[{"name": "x", "base_url": "http://h/v1", "max_in_flight": 0}]', "max_in_flight must be an integer >= 1"),
    ('[{"name": "x", "base_url": "http://h/v1", "prices": {"input": "free"}}]', "prices must be"),
    ('[{"name": "x", "base_url": "http://h/v1"}, {"name": "x", "base_url": "http://h/v1"}]', "configured twice"),
    ('[{"name": "x", "base_url": "http://h/v1", "api_kye": "k"}]', "unknown field"),
    ('[{"name": "x", "base_url": "http://h/v1", "api_key": "env:NOT_SET_ANYWHERE"}]', "NOT_SET_ANYWHERE"),
])
def test_bad_configuration_is_refused_naming_the_field(value, message):
    with pytest.raises(EndpointConfigError, match=message):
        parse_endpoints(value, env={})


@pytest.mark.subprocess
def test_bad_endpoint_configuration_stops_start_up_naming_the_variable(emulator, tmp_path):
    bad = '[{"name": "gemini", "base_url": "http://127.0.0.1:8080/v1"}]'
    result = run_manage("check", env=worker_env(emulator, OPENAI_COMPATIBLE_ENDPOINTS=bad))
    assert result.returncode != 0
    assert "ImproperlyConfigured: OPENAI_COMPATIBLE_ENDPOINTS: endpoint 'gemini'" in result.stderr, result.stderr
    missing = run_manage("check", env=worker_env(emulator, OPENAI_COMPATIBLE_ENDPOINTS_FILE=str(tmp_path / "no.json")))
    assert missing.returncode != 0 and "OPENAI_COMPATIBLE_ENDPOINTS_FILE" in missing.stderr
    good = tmp_path / "endpoints.json"
    good.write_text('[{"name": "local", "base_url": "http://127.0.0.1:9/v1", "context_window": 8192}]')
    ok = run_manage("check", env=worker_env(emulator, OPENAI_COMPATIBLE_ENDPOINTS_FILE=str(good)))
    assert ok.returncode == 0, ok.stderr
    # A model without a price is worth a warning: its jobs will cost 0, marked unknown.
    assert "scriptripper.W102" in ok.stderr + ok.stdout


def test_openai_base_url_still_replaces_openai(alice_client, emulator, settings):
    """OPENAI_BASE_URL keeps working as before: the conftest points it at the emulator."""
    assert settings.OPENAI_BASE_URL == emulator.openai_base_url and not settings.OPENAI_COMPATIBLE_ENDPOINTS
    job_id = submit(alice_client, "openai", "gpt-4o-mini", {"summary": "Summarize"})
    work_burst()
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "finished"

