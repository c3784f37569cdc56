"""Ask jobs under the guarantees of every job: a scope over the context runs map-reduce within it; cancel,
SIGKILL of the worker, and budget refusals work as they do for analyze jobs (tests/jobs/test_worker_in_flight.py,
tests/jobs/test_job_durability_faults.py, tests/accounts/test_spending_limit.py).

Workers are real `rqworker` subprocesses where a process is stopped or killed, in-process bursts elsewhere."""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal

import pytest

from accounts.models import User
from accounts.services import spend_record
from emulator.fault_specs import faults
from jobs.models import Job, Task
from tests.conftest import PROCESS_WAIT, assert_error, wait_for, work_burst
from tests.jobs.asking import ask, sent_bodies, store, store_all
from tests.jobs.faults import WorkerProcess, wait_final

pytestmark = pytest.mark.django_db(transaction=True)

SMALL = ["TS3010a", "ES2009b"]  # together well within gpt-4o-mini's context: read whole, one call
LARGER = ["TS3010a", "ES2009b", "IS1006b", "Bro011", "education_0", "corpus/ES2016b", "corpus/IS1001c"]


def sent(emulator, text: str) -> int:
    return sum(text in body for body in sent_bodies(emulator))


def test_a_scope_over_the_context_runs_map_reduce_with_no_request_over_it(alice, alice_client, emulator, settings):
    limit = 12_000
    settings.MODEL_CONTEXT_OVERRIDES_RAW = f"gpt-4o-mini={limit}"
    emulator.configure(max_context=limit)
    store_all(alice, LARGER)
    job_id = ask(alice_client, "What did they say about the design, the budget and the schedule?").json()["job_id"]
    work_burst()

    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished", document["error"]
    stats = emulator.stats()
    assert stats["rejected_over_context"] == 0 and 0 < stats["max_prompt_tokens_seen"] <= limit
    metadata = document["result"]["metadata"]
    answer = metadata["tasks"]["answer"]
    bodies = sent_bodies(emulator)
    maps = [b for b in bodies if "These are some of the meetings in scope" in b]
    assert metadata["read"] == "search" and "search terms" in bodies[0]
    assert answer["chunks"] == len(maps) >= 2 and any("Merge the partial answers" in b for b in bodies)
    assert answer["calls"] == answer["tries"] == len(bodies)
    # Every turn read went to a map request, marked with its meeting.
    for name, meeting in enumerate(metadata["meetings"], 1):
        for first, last in meeting["turn_ranges"]:
            assert any(f"[M{name} T{first}] " in b for b in maps) and any(f"[M{name} T{last}] " in b for b in maps)
    # The merged answer's citations were checked against the meetings read, and name their transcripts.
    assert answer["citations_checked"] > 0 and answer["citations_rejected"] == 0
    ids = {m["transcript"] for m in metadata["meetings"]}
    assert {c["transcript"] for r in answer["references"] for c in r["citations"]} <= ids


@pytest.mark.subprocess
def test_cancel_stops_a_running_ask_and_counts_its_call_lost(alice, alice_client, emulator, tmp_path):
    store_all(alice, SMALL)
    emulator.add_faults(faults.delay(20, "openai", match="Question: Who decided?"))
    job_id = ask(alice_client, "Who decided?").json()["job_id"]
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="4"):
        wait_for(lambda: Job.objects.filter(id=job_id, calls_in_flight=1).exists(), PROCESS_WAIT, "the answer's call")
        response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "canceled"
        wait_for(lambda: Job.objects.filter(id=job_id, lost_calls=1, calls_in_flight=0).exists(), PROCESS_WAIT,
                 "the canceled run's call counted as lost")
        assert Task.objects.get(job_id=job_id).status == "pending"  # nothing stored for it
        assert alice_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
        # The worker goes on with the next question.
        after = wait_final(ask(alice_client, "Who attended?").json()["job_id"])
    assert after.status == "finished", after.error
    assert sent(emulator, "Question: Who decided?") == 0  # its request never returned an answer to store


@pytest.mark.subprocess
def test_sigkill_of_the_worker_mid_ask_reruns_it_elsewhere_counting_the_paid_calls_lost(alice, alice_client,
                                                                                      emulator, settings, tmp_path):
    store_all(alice, LARGER)
    # The scope is over the context, so it is searched (a search-terms call), and what the search reads fits one
    # request (one answer call): two calls of one task.
    limit = 24_000
    question = "What was decided about the remote control's buttons?"
    emulator.add_faults([faults.reply(json.dumps({"terms": ["buttons", "rubber"]}), "openai", match="search terms",
                                      times=-1),
                         faults.delay(30, "openai", match=f"Question: {question}")])
    job_id = ask(alice_client, question).json()["job_id"]
    env = {"MODEL_CONTEXT_OVERRIDES": f"gpt-4o-mini={limit}", "ASK_READ_TOKENS": "8000", "WORKER_CONCURRENCY": "4"}
    with WorkerProcess(emulator, tmp_path, "a", **env) as first:
        # The terms call answered, the answer's call in flight: two calls of the task not stored yet.
        wait_for(lambda: Job.objects.filter(id=job_id, calls_in_flight=2).exists(), PROCESS_WAIT,
                 "the search-terms call done and the answer's call in flight")
        os.kill(first.pid, signal.SIGKILL)
        first.wait_exit()
        with WorkerProcess(emulator, tmp_path, "b", **env):
            job = wait_final(job_id)
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.lost_calls == 2
    # Both calls were sent again by the second attempt; only its answers were stored and billed.
    assert sent(emulator, "search terms") == 2
    task = Task.objects.get(job_id=job_id)
    assert task.calls == 2 and task.status == "succeeded" and task.cost > 0


def over_budget(alice: User, amount: Decimal) -> None:
    User.objects.filter(pk=alice.pk).update(monthly_budget=amount)


def test_an_ask_over_the_budget_is_402_and_creates_nothing(alice, alice_client):
    store_all(alice, SMALL)
    over_budget(alice, Decimal("0.000001"))
    error = assert_error(ask(alice_client, "What was decided?", model="gpt-4o"), 402, "budget_exceeded")
    assert "monthly budget" in error["message"]
    assert not Job.objects.exists()


def test_an_ask_whose_max_cost_is_below_its_lowest_cost_is_400(alice, alice_client):
    store_all(alice, SMALL)
    assert_error(ask(alice_client, "What was decided?", model="gpt-4o", max_cost="0.000001"), 400,
                 "validation_error", "max_cost")
    # A cap above the highest estimate is accepted and kept.
    assert ask(alice_client, "What was decided?", model="gpt-4o", max_cost="5").status_code == 202
    assert Job.objects.get().max_cost == Decimal("5")


def test_an_ask_whose_owner_went_over_budget_runs_nothing_and_says_why(alice, alice_client, emulator):
    store_all(alice, SMALL)
    job_id = ask(alice_client, "What was decided?").json()["job_id"]
    over_budget(alice, Decimal("0.01"))
    spend_record(user_id=alice.pk, reference="others", amount=Decimal("0.01"))
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "failed" and "monthly spending limit" in document["error"]
    assert emulator.requests() == []


def test_a_small_budget_still_takes_a_small_question(alice, alice_client, emulator):
    store(alice, "TS3010a")
    over_budget(alice, Decimal("1"))
    job_id = ask(alice_client, "Who attended?").json()["job_id"]
    work_burst()
    assert Job.objects.get(id=job_id).status == "finished"
