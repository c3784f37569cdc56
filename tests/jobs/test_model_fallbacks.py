"""Jobs with a fallback chain against a failing provider, end to end: the API, the project's worker (in this
process), the real SDKs and the emulator's faults, per provider and model.

Every test shows one reason a task moves to the next model of its chain (or does not), who answered, what it fell
back from, and the bill: each call at the price of the model that answered it, the failed model's answered calls
kept on it, nothing paid twice. Time settings are short (a model's time slice of half a second, a cooldown of one).
"""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from analysis.engine.catalogue import get_model
from analysis.engine.pricing import cost_of
from analysis.engine.providers.usage import Usage
from emulator.server import faults
from jobs.models import Job, Task
from jobs.services import task_reuse_key
from tests.analysis.test_provider_retries import wait_idle
from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Alice: We ship on Friday.\nBob: Then the demo is on Monday.\nAlice: I will book the room."
TASKS = {"summary": "Provide a brief summary", "actions": "List the action items", "risks": "Name the risks"}
PRIMARY = ("openai", "gpt-4o-mini")
FALLBACK = ("anthropic", "claude-haiku-4-5")
CHAIN = [{"provider": FALLBACK[0], "model": FALLBACK[1]}]


@pytest.fixture(autouse=True)
def short_times(settings):
    settings.FALLBACK_AFTER_SECONDS = 0.5
    settings.CIRCUIT_COOLDOWN_SECONDS = 1.0
    settings.CIRCUIT_COOLDOWN_MAX_SECONDS = 4.0
    settings.PROVIDER_RETRY_MAX_TOTAL = 6.0


def submit(client, *, provider: str = PRIMARY[0], model: str = PRIMARY[1], chain=CHAIN, tasks=TASKS,
           text: str = TEXT, **extra) -> str:
    body = {"transcript": text, "provider": provider, "model": model, "tasks": tasks, "reuse": False, **extra}
    if chain is not None:
        body["fallback_models"] = chain
    response = client.post("/api/v1/jobs/analyze", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def run_job(client, **kw) -> dict:
    job_id = submit(client, **kw)
    work_burst()
    return client.get(f"/api/v1/jobs/{job_id}").json()


def billed(emulator, provider: str, model: str, *, status: int = 200) -> Decimal:
    """What the calls this model answered cost at its own price, from the usage the emulator sent back."""
    info = get_model(provider, model)
    return sum((cost_of(info, Usage(input_tokens=r["prompt_tokens"], output_tokens=r["output_tokens"]))
                for r in emulator.requests(provider) if r["model"] == model and r["status"] == status),
               Decimal("0"))


def sent_to(emulator, provider: str, model: str) -> list[dict]:
    return [r for r in emulator.requests(provider) if r["model"] == model]


def test_a_primary_answering_only_503_every_task_answered_by_the_fallback_and_billed_at_its_price(
        alice_client, emulator):
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1))
    data = run_job(alice_client)
    assert data["status"] == "finished" and data["error"] is None
    result = data["result"]
    assert list(result["results"]) == list(TASKS) and result["errors"] == {}
    metadata = result["metadata"]
    # The job's request stays the job's; each task says who answered it and what it fell back from.
    assert (metadata["provider"], metadata["model"]) == PRIMARY and metadata["fallback_models"] == CHAIN
    for task in metadata["tasks"].values():
        assert (task["provider"], task["model"]) == FALLBACK
        [moved] = task["fallback_from"]
        # Its own failures, or the circuit they opened meanwhile (the tasks run side by side).
        assert (moved["provider"], moved["model"]) == PRIMARY and moved["reason"] in ("server_error", "circuit_open")
        assert "server error" in moved["message"] or "(server_error" in moved["message"]
        # Its failed tries on the primary (none when the circuit had opened before it asked) and the fallback's.
        assert task["calls"] == 1 and task["tries"] >= 1
    # Every call billed at the price of the model that answered it (the 503s cost nothing).
    total = Decimal(str(metadata["total_cost"]))
    assert total == billed(emulator, *FALLBACK) > 0
    assert total != sum(cost_of(get_model(*PRIMARY), Usage(input_tokens=r["prompt_tokens"],
                                                           output_tokens=r["output_tokens"]))
                        for r in sent_to(emulator, *FALLBACK))
    # Each answer is stored under the reuse key of the model that answered it.
    job = Job.objects.get(id=data["job_id"])
    for task in job.tasks.all():
        assert task.reuse_key == task_reuse_key(job=job, prompt=task.prompt, provider=FALLBACK[0],
                                                model=FALLBACK[1])
        assert task.reuse_key != task_reuse_key(job=job, prompt=task.prompt)


def test_the_admin_shows_who_answered_and_the_charts_the_provider_health(alice_client, emulator, operators_group):
    from django.test import Client

    from accounts.services import user_upsert

    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1))
    data = run_job(alice_client, tasks={"summary": "Provide a brief summary"})
    olga, _ = user_upsert(username="olga", plan="pro", is_staff=True)  # an operator, not a superuser
    operator = Client()
    operator.force_login(olga)
    page = operator.get(f"/admin/jobs/job/{data['job_id']}/change/").content.decode()
    assert "Fallback models" in page and '<div class="readonly">anthropic / claude-haiku-4-5</div>' in page
    assert "anthropic / claude-haiku-4-5 <span" in page and "after falling back from:" in page
    assert "openai / gpt-4o-mini: <b>server_error</b>" in page or "openai / gpt-4o-mini: <b>circuit_open</b>" in page
    charts = operator.get("/admin/jobs/job/charts/").content.decode()
    row = charts.split('data-model="openai/gpt-4o-mini"', 1)[1].split("</tr>", 1)[0]
    assert 'data-state="' in charts and "server_error" in row


def test_a_fallbacks_answer_is_reused_for_that_model_only(alice_client, emulator):
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1))
    run_job(alice_client, tasks={"summary": "Provide a brief summary"}, reuse=True)
    emulator.reset()
    # Asked of the model that answered: reused at $0, no provider call.
    on_fallback = run_job(alice_client, provider=FALLBACK[0], model=FALLBACK[1], chain=[],
                          tasks={"summary": "Provide a brief summary"}, reuse=True)
    assert on_fallback["result"]["metadata"]["tasks"]["summary"]["reused"] is True
    assert emulator.requests() == []
    # Asked of the model that failed (healthy again): a new call, never the fallback's answer.
    on_primary = run_job(alice_client, tasks={"summary": "Provide a brief summary"}, reuse=True, chain=[])
    task = on_primary["result"]["metadata"]["tasks"]["summary"]
    assert task["reused"] is False and (task["provider"], task["model"]) == PRIMARY
    assert len(sent_to(emulator, *PRIMARY)) == 1


def test_a_primary_hanging_past_the_request_timeout_is_left_for_the_fallback(alice_client, emulator, settings):
    settings.PROVIDER_REQUEST_TIMEOUT = 0.5
    emulator.add_faults(faults.delay(4.0, "openai", model="gpt-4o-mini", times=-1))
    data = run_job(alice_client, tasks={"summary": "Provide a brief summary"})
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "finished" and (task["provider"], task["model"]) == FALLBACK
    assert task["fallback_from"][0]["reason"] == "timeout"
    assert task["latency_s"] < 3.5  # a timeout, a slice of 0.5 s, then the fallback: not the hang's 4 s
    wait_idle(emulator)


def test_the_primarys_abandoned_call_answering_late_is_never_used_nor_paid_twice(alice_client, emulator):
    # Each task's first try is refused (its slice starts), its second hangs past the slice: abandoned, the fallback
    # answers, then the primary's answer arrives and is dropped.
    emulator.add_faults([faults.server_error("openai", status=503, model="gpt-4o-mini", match=f"[{name}]", times=1)
                         for name in ("a", "b")]
                        + [faults.delay(2.0, "openai", model="gpt-4o-mini", times=-1)])
    tasks = {"a": "[a] Provide a brief summary", "b": "[b] List the action items"}
    data = run_job(alice_client, tasks=tasks)
    wait_idle(emulator)  # the primary's late answers are in
    late = [r for r in sent_to(emulator, *PRIMARY) if r["status"] == 200]
    assert len(late) == 2, [r["status"] for r in sent_to(emulator, *PRIMARY)]
    for task in data["result"]["metadata"]["tasks"].values():
        assert (task["provider"], task["model"]) == FALLBACK and task["calls"] == 1
        assert task["fallback_from"][0]["reason"] == "timeout"
    assert data["result"]["results"] == {name: Task.objects.get(job_id=data["job_id"], name=name).output
                                         for name in tasks}
    # The abandoned calls are lost calls (paid, answer never used), never a second answer or a second bill.
    job = Job.objects.get(id=data["job_id"])
    assert job.lost_calls == 2 and job.calls_in_flight == 0
    assert Decimal(str(data["result"]["metadata"]["total_cost"])) == billed(emulator, *FALLBACK)


def test_a_429_with_a_long_retry_after_moves_on_at_once(alice_client, emulator):
    emulator.add_faults(faults.rate_limit("openai", retry_after=120, model="gpt-4o-mini", times=-1))
    data = run_job(alice_client)
    assert data["status"] == "finished"
    for task in data["result"]["metadata"]["tasks"].values():
        assert (task["provider"], task["model"]) == FALLBACK
        assert task["fallback_from"][0]["reason"] == "rate_limit"
        assert task["latency_s"] < 10  # never waits the two minutes asked for
    assert len(sent_to(emulator, *PRIMARY)) <= len(TASKS)  # one try each: the wait asked for is past the slice


def test_a_refused_key_moves_every_task_on_and_tells_the_operator_once(alice_client, emulator, caplog):
    emulator.add_faults(faults.status(401, "openai", model="gpt-4o-mini", times=-1))
    with caplog.at_level(logging.INFO):
        data = run_job(alice_client)
    assert data["status"] == "finished"
    for task in data["result"]["metadata"]["tasks"].values():
        assert (task["provider"], task["model"]) == FALLBACK and task["fallback_from"][0]["reason"] == "auth"
    assert len(sent_to(emulator, *PRIMARY)) == len(TASKS)  # a refused key is not retried
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR and "rejected the API key" in r.getMessage()]
    assert len(loud) == 1 and "OpenAI" in loud[0].getMessage()
    assert "test-openai_api_key" not in caplog.text  # never the key


def test_a_context_refusal_on_a_small_primary_restarts_on_a_larger_fallback_planned_for_its_window(
        alice_client, emulator, settings):
    # Declared at 4,000 tokens here, the primary really reads only 1,200: every chunk planned for it is refused.
    settings.MODEL_CONTEXT_OVERRIDES_RAW = "gpt-4o-mini=4000"
    emulator.configure(max_context_per_model={"gpt-4o-mini": 1200})
    text = transcript("covid_2.txt")[:40_000]
    data = run_job(alice_client, text=text, tasks={"summary": "Provide a brief summary"})
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "finished" and (task["provider"], task["model"]) == FALLBACK
    assert task["fallback_from"][0]["reason"] == "context_length"
    primary = sent_to(emulator, *PRIMARY)
    assert primary and all(r.get("rejected_over_context") for r in primary)
    assert max(r["prompt_tokens"] for r in primary) < 4000  # chunks planned for the declared window
    # The fallback got a request planned for its own window: the whole transcript at once, not the small chunks.
    [request] = sent_to(emulator, *FALLBACK)
    assert task["chunks"] == 1 and request["prompt_tokens"] > 4000


def test_a_context_refusal_goes_only_to_a_model_with_a_larger_window(alice_client, emulator, settings):
    settings.MODEL_CONTEXT_OVERRIDES_RAW = "gpt-4o-mini=4000,gpt-4o=4000"
    emulator.configure(max_context_per_model={"gpt-4o-mini": 1200})
    data = run_job(alice_client, text=transcript("covid_2.txt")[:40_000], tasks={"summary": "Provide a brief summary"},
                   chain=[{"provider": "openai", "model": "gpt-4o"}])
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "failed" and task["fallback_from"] == [] and task["model"] == "gpt-4o-mini"
    assert sent_to(emulator, "openai", "gpt-4o") == []


def test_a_blocked_answer_moves_to_the_fallback_and_both_calls_stay_on_the_bill(alice_client, emulator):
    emulator.add_faults(faults.blocked("gemini", model="gemini-2.5-flash", match="List the action items", times=-1))
    data = run_job(alice_client, provider="gemini", model="gemini-2.5-flash",
                   chain=[{"provider": "openai", "model": "gpt-4o-mini"}])
    tasks = data["result"]["metadata"]["tasks"]
    assert data["status"] == "finished" and data["result"]["errors"] == {}
    actions = tasks["actions"]
    assert (actions["provider"], actions["model"]) == PRIMARY and actions["blocked"] is False
    assert actions["fallback_from"][0]["reason"] == "blocked" and actions["calls"] == 2
    assert all(tasks[name]["fallback_from"] == [] for name in ("summary", "risks"))
    # The blocked answer was paid for (at Gemini's price), the fallback's at OpenAI's: both on the bill.
    blocked_cost = billed(emulator, "gemini", "gemini-2.5-flash") - sum(
        Decimal(str(tasks[name]["cost"])) for name in ("summary", "risks"))
    assert blocked_cost > 0
    assert Decimal(str(actions["cost"])) == blocked_cost + billed(emulator, *PRIMARY)


def test_a_map_step_paid_on_the_failed_model_stays_on_the_bill(alice_client, emulator, settings):
    settings.MODEL_CONTEXT_OVERRIDES_RAW = "gpt-4o-mini=3000"
    text = transcript("covid_2.txt")[:30_000].rstrip() + "\nAlice: One last word, ZEBRA-CODA.\n"
    # Only the chunk that carries the last line fails on the primary: the other map calls are answered and paid.
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", match="ZEBRA-CODA", times=-1))
    data = run_job(alice_client, text=text, tasks={"summary": "Provide a brief summary"})
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "finished" and (task["provider"], task["model"]) == FALLBACK
    paid_on_primary = billed(emulator, *PRIMARY)
    assert paid_on_primary > 0
    assert Decimal(str(task["cost"])) == paid_on_primary + billed(emulator, *FALLBACK)
    assert task["calls"] == len([r for r in sent_to(emulator, *PRIMARY) if r["status"] == 200]) + 1
    usage = Usage(**{key: task["usage"][key] for key in task["usage"]})
    assert usage.input_tokens == sum(r["prompt_tokens"] for r in emulator.requests() if r["status"] == 200)


def test_every_model_down_waits_out_the_budget_then_fails_naming_each_model_and_why(alice_client, emulator, settings):
    settings.PROVIDER_RETRY_MAX_TOTAL = 4.0
    settings.CIRCUIT_FAILURE_THRESHOLD = 1000  # the failures themselves, not a circuit (tested on its own below)
    emulator.add_faults([faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1),
                         faults.overloaded("anthropic", model="claude-haiku-4-5", times=-1)])
    data = run_job(alice_client, tasks={"summary": "Provide a brief summary"})
    assert data["status"] == "failed"
    error = data["result"]["errors"]["summary"]
    assert error.startswith("Every model of the fallback chain failed: OpenAI gpt-4o-mini: OpenAI server error")
    assert "; Anthropic claude-haiku-4-5: Anthropic " in error
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert (task["provider"], task["model"]) == FALLBACK and task["fallback_from"][0]["reason"] == "server_error"
    assert task["latency_s"] > 3.0  # the last model had the rest of the budget, not a slice of half a second
    assert task["cost"] == 0


def test_a_bad_request_never_falls_back(alice_client, emulator):
    emulator.add_faults(faults.status(400, "openai", model="gpt-4o-mini", times=-1))
    data = run_job(alice_client, tasks={"summary": "Provide a brief summary"})
    task = data["result"]["metadata"]["tasks"]["summary"]
    assert data["status"] == "failed" and data["result"]["errors"]["summary"].startswith("OpenAI error 400")
    assert task["fallback_from"] == [] and (task["provider"], task["model"]) == PRIMARY
    assert sent_to(emulator, *FALLBACK) == []


def test_structured_and_cited_tasks_answered_by_the_fallback_through_its_own_structured_output(alice_client,
                                                                                              emulator):
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1))
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"task": {"type": "string"}, "citations": {"type": "array", "items": {
            "type": "object", "properties": {"turn": {"type": "integer"}, "quote": {"type": "string"}},
            "required": ["turn", "quote"]}}}, "required": ["task", "citations"]}}}, "required": ["items"]}
    tasks = {"actions": {"prompt": "List the action items", "schema": schema},
             "summary": {"prompt": "Provide a brief summary", "cite": True}}
    text = ("Alice: We will ship the new onboarding flow on Friday morning.\n"
            "Bob: Then I will write the release notes for the onboarding flow.\n")
    data = run_job(alice_client, tasks=tasks, text=text)
    assert data["status"] == "finished" and data["result"]["errors"] == {}
    metadata = data["result"]["metadata"]["tasks"]
    for name in tasks:
        assert (metadata[name]["provider"], metadata[name]["model"]) == FALLBACK
        assert metadata[name]["citations_checked"] >= 1 and metadata[name]["citations_rejected"] == 0
    assert data["result"]["results"]["actions"]["items"]
    # The fallback's requests used Anthropic's own field (output_config.format), the primary's OpenAI's.
    assert all("output_config" in r["body"] and "response_format" not in r["body"]
               for r in sent_to(emulator, *FALLBACK))
    assert all("response_format" in r["body"] for r in sent_to(emulator, *PRIMARY))


def test_an_open_circuit_sends_a_task_with_a_chain_straight_on_and_one_without_waits_for_the_probe(
        alice_client, emulator, settings, clean_redis):
    from analysis.analyze import provider_health
    from analysis.engine.providers.base import ProviderError

    health = provider_health(clean_redis)
    for _ in range(settings.CIRCUIT_FAILURE_THRESHOLD):
        health.record(*PRIMARY, error=ProviderError("openai", "server_error", "OpenAI error 503"), probe=False)
    with_chain = run_job(alice_client, tasks={"summary": "Provide a brief summary"})
    task = with_chain["result"]["metadata"]["tasks"]["summary"]
    assert (task["provider"], task["model"]) == FALLBACK and task["fallback_from"][0]["reason"] == "circuit_open"
    assert task["tries"] == 1  # the fallback's: the open circuit's refusal sent nothing
    assert sent_to(emulator, *PRIMARY) == []
    # Without a chain the task waits, as it always did, and the probe (the provider is back) closes the circuit.
    alone = run_job(alice_client, tasks={"summary": "Provide a brief summary"}, chain=[])
    task = alone["result"]["metadata"]["tasks"]["summary"]
    assert alone["status"] == "finished" and (task["provider"], task["model"]) == PRIMARY
    assert len(sent_to(emulator, *PRIMARY)) == 1 and task["tries"] == 1
    assert health.snapshot([PRIMARY])[PRIMARY].state == "ok"


def test_a_batch_jobs_call_its_batch_could_not_answer_goes_on_through_the_chain(alice_client, emulator):
    from emulator.batches import configure_batches
    from jobs.worker.provider_batch_poller import batches_poll

    # The batch answers one call and lets the other expire; the job's fallback (standard) sends that one directly,
    # where the model answers only 503: the chain's model answers it, at its standard price.
    configure_batches(emulator.url, outcome="expired", expire_answered=1)
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary", "actions": "List the action items"},
                    processing="batch")
    work_burst()
    batches_poll(worker="test-poller")
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-4o-mini", times=-1))
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and data["result"]["errors"] == {}, data
    tasks = data["result"]["metadata"]["tasks"]
    by_batch = [name for name, task in tasks.items() if not task["fallback_from"]]
    [moved] = [name for name, task in tasks.items() if task["fallback_from"]]
    assert len(by_batch) == 1 and (tasks[by_batch[0]]["provider"], tasks[by_batch[0]]["model"]) == PRIMARY
    assert (tasks[moved]["provider"], tasks[moved]["model"]) == FALLBACK
    assert Decimal(str(tasks[moved]["cost"])) == billed(emulator, *FALLBACK)


@pytest.mark.parametrize("chain,tier", [([{"provider": "gemini", "model": "gemini-3.5-flash"}], "flex"),
                                        ([{"provider": "anthropic", "model": "claude-haiku-4-5"}], None)])
def test_a_flex_jobs_chain_model_runs_flex_where_it_has_the_price_else_standard(alice_client, emulator, chain, tier):
    emulator.add_faults(faults.server_error("openai", status=503, model="gpt-5-mini", times=-1))
    data = run_job(alice_client, model="gpt-5-mini", processing="flex", chain=chain,
                   tasks={"summary": "Provide a brief summary"})
    task = data["result"]["metadata"]["tasks"]["summary"]
    provider, model = chain[0]["provider"], chain[0]["model"]
    assert data["status"] == "finished" and (task["provider"], task["model"]) == (provider, model)
    [answered] = sent_to(emulator, provider, model)
    asked = answered["body"].get("serviceTier") if provider == "gemini" else answered["body"].get("service_tier")
    assert (str(asked).lower() if asked else None) == tier
    # Billed at that tier's price: flex where asked, standard otherwise.
    info = get_model(provider, model)
    usage = Usage(input_tokens=answered["prompt_tokens"], output_tokens=answered["output_tokens"])
    assert Decimal(str(task["cost"])) == cost_of(info, usage, processing=tier or "standard")
