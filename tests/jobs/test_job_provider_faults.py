"""Whole jobs against a misbehaving provider: every fault kind ends with the right
results and `tries` recorded; what waiting cannot fix fails fast; partial results."""

from __future__ import annotations

import pytest

from emulator.server import faults
from tests.analysis.test_provider_retries import wait_idle
from tests.conftest import work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Alice: We ship on Friday.\nBob: Then the demo is on Monday.\nAlice: I will book the room."
TASKS = {"summary": "Provide a brief summary", "actions": "List the action items", "risks": "Name the risks"}


def run_job(client, provider: str, model: str, tasks: dict[str, str] = TASKS, **extra) -> dict:
    response = client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": provider, "model": model,
                                                    "tasks": tasks, **extra}, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    return client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()


# One fault kind per row, spread over the providers; each hits the "actions" task twice, then lets it through.
@pytest.mark.parametrize("provider,model,fault", [
    ("openai", "gpt-4o-mini", faults.rate_limit("openai", retry_after=0.1, match="List the action items", times=2)),
    ("anthropic", "claude-haiku-4-5", faults.rate_limit("anthropic", match="List the action items", times=2)),
    ("gemini", "gemini-2.5-flash", faults.rate_limit("gemini", retry_after=0.1, match="List the action items", times=2)),
    ("gemini", "gemini-2.5-flash", faults.server_error("gemini", status=500, match="List the action items", times=2)),
    ("openai", "gpt-4o-mini", faults.server_error("openai", status=502, match="List the action items", times=2)),
    ("anthropic", "claude-haiku-4-5", faults.overloaded("anthropic", match="List the action items", times=2)),
    ("openai", "gpt-4o-mini", faults.drop("openai", match="List the action items", times=2)),
    ("anthropic", "claude-haiku-4-5", faults.malformed("anthropic", match="List the action items", times=2)),
    ("gemini", "gemini-2.5-flash", faults.drop("gemini", match="List the action items", times=2)),
], ids=["openai-429-retry-after", "anthropic-429", "gemini-429-retryDelay", "gemini-500", "openai-502",
        "anthropic-529", "openai-drop", "anthropic-malformed", "gemini-drop"])
def test_transient_faults_end_with_every_result_and_the_tries_recorded(alice_client, emulator, provider, model,
                                                                       fault):
    emulator.add_faults(fault)
    data = run_job(alice_client, provider, model)
    assert data["status"] == "finished" and data["error"] is None
    result = data["result"]
    assert list(result["results"]) == list(TASKS) and result["errors"] == {}
    tries = {name: task["tries"] for name, task in result["metadata"]["tasks"].items()}
    assert tries == {"summary": 1, "actions": 3, "risks": 1}
    # Why "actions" took three tries, although it succeeded: the last failed one's message.
    last_errors = {name: task["last_error"] for name, task in result["metadata"]["tasks"].items()}
    assert last_errors["summary"] is None and last_errors["risks"] is None
    assert isinstance(last_errors["actions"], str) and last_errors["actions"]


@pytest.mark.parametrize("provider,model", [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"),
                                            ("gemini", "gemini-2.5-flash")])
def test_a_timeout_is_retried(alice_client, emulator, settings, provider, model):
    settings.PROVIDER_REQUEST_TIMEOUT = 0.5
    emulator.add_faults(faults.delay(2.0, provider, match="Name the risks", times=1))
    data = run_job(alice_client, provider, model)
    assert data["status"] == "finished" and data["result"]["errors"] == {}
    assert data["result"]["metadata"]["tasks"]["risks"]["tries"] == 2
    wait_idle(emulator)  # the abandoned slow request must not land in the next test's records


@pytest.mark.parametrize("provider,model,fault,message", [
    ("openai", "gpt-4o-mini", faults.status(401, "openai"), "OpenAI rejected the API key (401)"),
    ("gemini", "gemini-2.5-flash", faults.insufficient_quota("gemini"), "Gemini account is out of quota or credit"),
    ("anthropic", "claude-haiku-4-5", faults.spend_limit("anthropic"), "Anthropic account is out of quota or credit"),
    ("openai", "gpt-4o-mini", faults.insufficient_quota("openai"), "OpenAI account is out of quota or credit"),
])
def test_a_job_whose_every_task_failed_is_failed_after_one_try_each(alice_client, emulator, provider, model, fault,
                                                                    message):
    emulator.add_faults({**fault, "times": -1})
    data = run_job(alice_client, provider, model)
    assert data["status"] == "failed"
    assert data["error"].startswith(f"All 3 task(s) failed; first error: {message}"), data["error"]
    assert data["result"]["results"] == {}
    assert all(error.startswith(message) for error in data["result"]["errors"].values())
    assert {t["tries"] for t in data["result"]["metadata"]["tasks"].values()} == {1}
    assert len(emulator.requests(provider)) == 3


def test_partial_results_finish_the_job_with_results_and_errors(alice_client, emulator, settings):
    # A 503 that never ends is waited out until the task's time budget, then given up.
    settings.PROVIDER_RETRY_BASE_DELAY = 0.2
    settings.PROVIDER_RETRY_MAX_DELAY = 0.2
    settings.PROVIDER_RETRY_MAX_TOTAL = 1.0
    emulator.add_faults([
        faults.status(400, "anthropic", match="Name the risks", times=-1),
        faults.server_error("anthropic", status=503, match="List the action items", times=-1),
    ])
    data = run_job(alice_client, "anthropic", "claude-haiku-4-5")
    # Finished (a status of the seed's), and said to be partial, with how many failed.
    assert data["status"] == "finished" and data["partial"] is True
    assert data["error"] == "2 of 3 task(s) failed (see `errors`)."
    result = data["result"]
    assert list(result["results"]) == ["summary"]
    assert result["errors"]["risks"].startswith("Anthropic error 400")
    assert result["errors"]["actions"].startswith("Anthropic server error: gave up after ")
    tasks = result["metadata"]["tasks"]
    assert (tasks["summary"]["tries"], tasks["risks"]["tries"]) == (1, 1) and tasks["actions"]["tries"] >= 3
    # Only the answered call is billed.
    assert result["metadata"]["total_cost"] == tasks["summary"]["cost"] > 0
    assert tasks["risks"]["cost"] == tasks["actions"]["cost"] == 0


def test_truncated_output_is_kept_and_flagged_and_blocked_output_is_an_error(alice_client, emulator):
    emulator.add_faults([faults.truncated("gemini", match="Provide a brief summary", times=1),
                         faults.blocked("gemini", match="Name the risks", times=1)])
    data = run_job(alice_client, "gemini", "gemini-2.5-flash")
    assert data["status"] == "finished"
    result, tasks = data["result"], data["result"]["metadata"]["tasks"]
    assert result["results"]["summary"]  # the text that came back is kept...
    assert tasks["summary"]["truncated"] is True and tasks["summary"]["finish_reason"] == "MAX_TOKENS"  # ...flagged
    assert "risks" not in result["results"]
    assert result["errors"]["risks"] == "Gemini blocked the answer (SAFETY)"
    assert tasks["risks"]["blocked"] is True and tasks["risks"]["tries"] == 1
    assert tasks["actions"]["truncated"] is False and tasks["actions"]["blocked"] is False


@pytest.mark.parametrize("provider,model,reason", [("openai", "gpt-4o-mini", "length"),
                                                   ("anthropic", "claude-haiku-4-5", "max_tokens")])
def test_hitting_the_output_limit_is_flagged(alice_client, emulator, provider, model, reason):
    emulator.configure(pad_output_tokens=500)
    data = run_job(alice_client, provider, model, tasks={"summary": "Provide a brief summary"}, max_output_tokens=50)
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "finished"
    assert task["truncated"] is True and task["finish_reason"] == reason
    assert task["usage"]["output_tokens"] == 50
