"""Fallback chains and provider health with real `rqworker` processes: the circuit shared by two workers through
Redis, what the API and /metrics show of it, and a cancel or a SIGKILL in the middle of a fallback.

A primary answering only 503: every job finishes on its fallback, and once the primary's circuit has opened, at
most one probe per cooldown reaches it, counted at the emulator, whichever worker sends it. Cancel and SIGKILL: no
answer lost, nothing paid twice (calls in flight counted as lost calls, every stored answer billed once).
"""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest
from django.db.models import Sum

from accounts.models import SpendEntry
from emulator.server import faults
from jobs.models import Job, Task
from tests.analysis.test_provider_retries import wait_idle
from tests.conftest import PROCESS_WAIT, wait_for
from tests.jobs.faults import TEXT, WorkerProcess, done, in_flight, sent, task_prompts, wait_all_final, wait_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

PRIMARY = ("openai", "gpt-4o-mini")
FALLBACK = ("anthropic", "claude-haiku-4-5")
COOLDOWN_S = 1.0
# Workers holding two jobs each: jobs keep arriving at the primary's circuit for seconds after it opened.
CIRCUIT_ENV = {"CIRCUIT_FAILURE_THRESHOLD": "3", "CIRCUIT_COOLDOWN_SECONDS": str(COOLDOWN_S),
               "CIRCUIT_COOLDOWN_MAX_SECONDS": str(COOLDOWN_S), "FALLBACK_AFTER_SECONDS": "0.5",
               "PROVIDER_RETRY_MAX_TOTAL": "30", "WORKER_CONCURRENCY": "2", "WORKER_HIGH_RESERVED_SLOTS": "0",
               "TASK_CONCURRENCY": "2"}


def submit(client, prompts: dict[str, str], chain=({"provider": FALLBACK[0], "model": FALLBACK[1]},)) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": PRIMARY[0], "model": PRIMARY[1], "tasks": prompts, "reuse": False,
        "fallback_models": list(chain)}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def fallback_call_out(emulator, tag: str) -> bool:
    """The fallback's delayed answer to task `tag` has been asked for (its one-time delay fault taken) and is not back:
    the emulator records a request once it is answered."""
    pending = any(f.get("match") == f"[{tag}]" for f in emulator.faults())
    return not pending and not any(f"[{tag}]" in str(r["body"]) for r in emulator.requests("anthropic"))


def billed_once(job: Job) -> None:
    """Every stored answer billed once, at its task's cost, and nothing else billed."""
    entries = SpendEntry.objects.filter(reference__startswith="task:")
    tasks = {t.id: t for t in job.tasks.all()}
    by_task: dict[int, Decimal] = {}
    for entry in entries:
        task_id = int(entry.reference.split(":")[1])
        if task_id in tasks:
            assert task_id not in by_task, f"task {task_id} billed twice"
            by_task[task_id] = entry.amount
    assert by_task == {t.id: t.cost for t in tasks.values() if t.cost > 0}
    if job.status in Job.FINAL_STATUSES:
        assert job.tasks.aggregate(s=Sum("cost"))["s"] == job.total_cost


def test_two_workers_share_the_circuit_every_job_finishes_on_the_fallback_and_the_primary_gets_one_probe_per_cooldown(
        alice_client, emulator, tmp_path, clean_redis):
    emulator.add_faults([faults.server_error("openai", status=503, model=PRIMARY[1], times=-1),
                         faults.delay(0.4, "anthropic", model=FALLBACK[1], times=-1)])
    job_ids = [submit(alice_client, task_prompts(f"probe{n}", 2)) for n in range(16)]
    with (WorkerProcess(emulator, tmp_path, "a", **CIRCUIT_ENV) as a,
          WorkerProcess(emulator, tmp_path, "b", **CIRCUIT_ENV) as b):
        jobs = wait_all_final(job_ids)
        logs = a.output() + b.output()
    assert {job.status for job in jobs.values()} == {"finished"}, [(j.status, j.error) for j in jobs.values()]
    assert len({job.worker for job in jobs.values()}) == 2, logs  # both workers ran jobs
    tasks = Task.objects.filter(job_id__in=job_ids)
    assert {(t.provider, t.model) for t in tasks} == {FALLBACK}
    assert all(t.fallback_from and t.fallback_from[0]["reason"] in ("server_error", "circuit_open") for t in tasks)
    assert any(t.fallback_from[0]["reason"] == "circuit_open" for t in tasks)  # sent straight on, no request

    # Counted at the emulator: once the circuit opened, the requests that reached the primary are its probes.
    opened_at = float(clean_redis.hget("scriptripper:health:openai:gpt-4o-mini", "opened_at"))
    primary = sorted(r["time"] for r in emulator.requests("openai") if r["model"] == PRIMARY[1])
    # Requests let through just before it opened may arrive a moment after; no probe is due before a cooldown.
    probes = [t for t in primary if t > opened_at + 0.9 * COOLDOWN_S]
    last = max(r["time"] for r in emulator.requests("anthropic"))
    assert len(probes) <= (last - opened_at) / COOLDOWN_S + 1, (probes, opened_at, last)
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:])]
    assert all(gap >= COOLDOWN_S * 0.9 for gap in gaps), gaps
    assert len(primary) - len(probes) < len(tasks)  # most tasks never asked the primary

    # What a person sees: the model's health in the API, the circuit and the fallbacks in /metrics.
    [model] = alice_client.get("/api/v1/models?provider=openai&search=gpt-4o-mini").json()["models"]
    assert model["health"]["state"] == "open" and model["health"]["last_error_kind"] == "server_error"
    assert model["health"]["since"] is not None and model["health"]["next_probe_at"] is not None
    metrics = alice_client.get("/metrics").content.decode()
    assert 'scriptripper_provider_circuit{model="gpt-4o-mini",provider="openai",state="open"} 1.0' in metrics
    moved = [line for line in metrics.splitlines() if line.startswith("scriptripper_model_fallbacks_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in moved) == len(tasks)
    assert all('from_model="gpt-4o-mini"' in line and 'to_model="claude-haiku-4-5"' in line for line in moved)


def test_cancel_in_the_middle_of_a_fallback_loses_nothing_and_pays_nothing_twice(alice_client, emulator, tmp_path):
    prompts = task_prompts("cancelfb", 2)
    emulator.add_faults([faults.server_error("openai", status=503, model=PRIMARY[1], times=-1),
                         faults.delay(5, "anthropic", model=FALLBACK[1], match="[cancelfb-1]", times=1)])
    job_id = submit(alice_client, prompts)
    with WorkerProcess(emulator, tmp_path, FALLBACK_AFTER_SECONDS="0.5"):
        # The first task answered by the fallback, the second's fallback call in flight.
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id) and fallback_call_out(emulator, "cancelfb-1"),
                 PROCESS_WAIT, "the second task's fallback call in flight")
        response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "canceled", response.content
        wait_for(lambda: Job.objects.get(id=job_id).lost_calls == 1, PROCESS_WAIT, "the stopped call counted as lost")
        job = Job.objects.get(id=job_id)
        assert job.calls_in_flight == 0
        t0 = job.tasks.get(name="t0")
        assert (t0.status, t0.provider, t0.model) == ("succeeded", *FALLBACK)
        assert job.tasks.get(name="t1").status == "pending"  # nothing stored for it: its answer was never had
        billed_once(job)
        # Retried: only the task without a result runs; the first is never asked again.
        emulator.reset()
        emulator.add_faults(faults.server_error("openai", status=503, model=PRIMARY[1], times=-1))
        assert alice_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
        job = wait_final(job_id)
    assert job.status == "finished", job.error
    assert sent(emulator, prompts["t0"]) == 0
    assert job.tasks.get(name="t1").provider == FALLBACK[0]
    billed_once(job)


def test_sigkill_of_a_worker_in_the_middle_of_a_fallback_loses_nothing_and_pays_nothing_twice(alice_client, emulator,
                                                                                              tmp_path):
    prompts = task_prompts("killfb", 2)
    emulator.add_faults([faults.server_error("openai", status=503, model=PRIMARY[1], times=-1),
                         faults.delay(8, "anthropic", model=FALLBACK[1], match="[killfb-1]", times=1)])
    job_id = submit(alice_client, prompts)
    env = {"FALLBACK_AFTER_SECONDS": "0.5"}
    with WorkerProcess(emulator, tmp_path, "a", **env) as first:
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id) and fallback_call_out(emulator, "killfb-1"),
                 PROCESS_WAIT, "the second task's fallback call in flight")
        os.kill(first.pid, signal.SIGKILL)
    # Another worker takes the job over after its lease, and runs only the task without a result.
    with WorkerProcess(emulator, tmp_path, "b", **env):
        job = wait_final(job_id)
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.lost_calls == 1  # the fallback call the kill left unanswered
    wait_idle(emulator)  # that call answered meanwhile, to nobody: recorded at the emulator
    tasks = {t.name: t for t in job.tasks.all()}
    assert {(t.provider, t.model) for t in tasks.values()} == {FALLBACK}
    fallback_sent = {name: sum(prompt in str(r["body"]) for r in emulator.requests("anthropic"))
                     for name, prompt in prompts.items()}
    assert fallback_sent == {"t0": 1, "t1": 2}  # t0 stored before the kill: never sent again
    billed_once(job)
