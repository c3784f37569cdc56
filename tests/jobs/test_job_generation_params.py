"""Per-job output limit and temperature reach each provider in the form it accepts; reasoning
models (gpt-5) get max_completion_tokens and no temperature; unlisted models."""

from __future__ import annotations

import pytest

from tests.conftest import work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Alice: We ship on Friday.\nBob: Then the demo is on Monday."
TASKS = {"summary": "Provide a brief summary"}


def run(client, provider: str, model: str, **params) -> dict:
    response = client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": provider, "model": model,
                                                    "tasks": TASKS, **params}, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    return client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()


def test_openai_chat_model_gets_max_tokens_and_temperature(alice_client, emulator):
    data = run(alice_client, "openai", "gpt-4o-mini", max_output_tokens=321, temperature=0.2)
    assert data["status"] == "finished"
    [body] = [r["body"] for r in emulator.requests("openai")]
    assert body["max_tokens"] == 321 and body["temperature"] == 0.2 and "max_completion_tokens" not in body


def test_reasoning_model_gets_max_completion_tokens_and_no_temperature(alice_client, emulator):
    emulator.configure(reasoning_tokens=40)
    data = run(alice_client, "openai", "gpt-5", max_output_tokens=321, temperature=0.2)
    assert data["status"] == "finished", data
    [body] = [r["body"] for r in emulator.requests("openai")]
    assert body["max_completion_tokens"] == 321
    assert "max_tokens" not in body and "temperature" not in body
    assert data["result"]["metadata"]["tasks"]["summary"]["usage"]["reasoning_tokens"] == 40


def test_anthropic_gets_the_limit_and_never_a_temperature_and_gemini_both(alice_client, emulator):
    # Anthropic's API version 2026-10-21 (anthropic 2.x) answers 400 to any temperature.
    assert run(alice_client, "anthropic", "claude-haiku-4-5", max_output_tokens=300, temperature=0.5)["status"] == \
        "finished"
    run(alice_client, "gemini", "gemini-2.5-flash", max_output_tokens=300, temperature=0.5)
    [anthropic] = [r["body"] for r in emulator.requests("anthropic")]
    [gemini] = [r["body"] for r in emulator.requests("gemini")]
    assert anthropic["max_tokens"] == 300 and "temperature" not in anthropic
    assert gemini["generationConfig"]["maxOutputTokens"] == 300 and gemini["generationConfig"]["temperature"] == 0.5


def test_without_params_the_default_limit_is_sent_and_no_temperature(alice_client, emulator, settings):
    run(alice_client, "anthropic", "claude-haiku-4-5")
    [body] = [r["body"] for r in emulator.requests("anthropic")]
    assert body["max_tokens"] == settings.DEFAULT_MAX_OUTPUT_TOKENS and "temperature" not in body


def test_an_output_limit_above_the_models_is_capped(alice_client, emulator):
    run(alice_client, "openai", "gpt-4o-mini", max_output_tokens=100_000)
    [body] = [r["body"] for r in emulator.requests("openai")]
    assert body["max_tokens"] == 16_384


def test_unlisted_model_is_refused_with_the_valid_ones(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": "openai",
                                                          "model": "llama3.1:8b", "tasks": TASKS}, format="json")
    assert response.status_code == 400
    message = response.json()["error"]["fields"]["model"][0]
    assert "llama3.1:8b" in message and "gpt-4o-mini" in message and "gpt-5" in message


def test_unlisted_model_is_run_at_cost_zero_with_its_price_unknown_when_allowed(alice_client, emulator, settings):
    settings.ALLOW_UNLISTED_MODELS = True
    data = run(alice_client, "openai", "llama3.1:8b")
    assert data["status"] == "finished", data
    metadata = data["result"]["metadata"]
    assert metadata["total_cost"] == 0 and metadata["tasks"]["summary"]["cost"] == 0
    assert metadata["usage"]["input_tokens"] > 0  # tokens are still counted
    assert metadata["price_unknown"] is True and "price is unknown" in metadata["note"]
    [body] = [r["body"] for r in emulator.requests("openai")]
    assert body["model"] == "llama3.1:8b"
