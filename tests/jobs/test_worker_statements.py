"""The worker's per-job statements (jobs/worker/lifecycle.py, jobs.services.job_finalize_row), written out as SQL,
called directly against the real PostgreSQL: the claim, a call going out, a task's outcome with its bill, and
the final state, each fenced by the attempt it belongs to."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import SpendEntry
from analysis.engine.planning import TaskSpec
from analysis.engine.providers.usage import Usage
from analysis.engine.runner import TaskOutcome
from jobs.models import Job, Task
from jobs.services import JobRequest, job_create, job_finalize_row
from jobs.worker.lifecycle import job_call_started, job_claim, job_tasks, task_outcome_save

pytestmark = pytest.mark.django_db


def queued_job(owner) -> Job:
    return job_create(owner=owner, request=JobRequest(
        provider="openai", model="gpt-4o-mini", transcript="Alice: we ship on Friday.\nBob: I write the notes.",
        tasks=[TaskSpec(name="summary", prompt="Summarize"), TaskSpec(name="owners", prompt="Who owns what?")]))


def answer(name: str, cost: str = "0.0012") -> TaskOutcome:
    return TaskOutcome(name=name, text=f"the {name}", usage=Usage(input_tokens=120, output_tokens=30),
                       cost=Decimal(cost), tries=1, calls=1, latency_s=0.4, priced_at=timezone.now())


def test_a_job_delivered_twice_is_claimed_once(alice):
    job = queued_job(alice)
    first = job_claim(job_id=job.id, worker="worker-a")
    second = job_claim(job_id=job.id, worker="worker-b")
    assert first is not None and second is None
    row = Job.objects.get(id=job.id)
    assert (row.status, row.worker, row.attempts) == (Job.Status.STARTED, "worker-a", 1)
    # The claim brings the owner's budget fields with it, and the tasks in their order.
    assert first.owner.pk == alice.pk and first.owner.plan == alice.plan
    assert [task.name for task in job_tasks(job=first)] == ["summary", "owners"]


def test_the_claim_counts_calls_left_in_flight_by_a_dead_attempt_as_lost(alice):
    job = queued_job(alice)
    Job.objects.filter(id=job.id).update(calls_in_flight=2, lost_calls=1)
    job_claim(job_id=job.id, worker="worker-a")
    row = Job.objects.get(id=job.id)
    assert (row.calls_in_flight, row.lost_calls) == (0, 3)


def test_a_call_going_out_is_counted_in_flight_only_for_the_attempt_that_holds_the_row(alice):
    job = queued_job(alice)
    claimed = job_claim(job_id=job.id, worker="worker-a")
    job_call_started(job=claimed)
    job_call_started(job=claimed)
    assert Job.objects.get(id=job.id).calls_in_flight == 2
    stale = Job.objects.get(id=job.id)
    stale.attempts -= 1  # an earlier attempt of the same job, still running somewhere
    job_call_started(job=stale)
    assert Job.objects.get(id=job.id).calls_in_flight == 2


def test_an_outcome_is_stored_and_billed_once_and_leaves_the_in_flight_count(alice):
    job = queued_job(alice)
    claimed = job_claim(job_id=job.id, worker="worker-a")
    job_call_started(job=claimed)
    task = Task.objects.get(job=job, name="summary")
    assert task_outcome_save(job=claimed, outcome=answer("summary"), calls_started=1, task_id=task.id)
    task.refresh_from_db()
    assert (task.status, task.output, task.cost, task.input_tokens, task.output_tokens) == (
        Task.Status.SUCCEEDED, "the summary", Decimal("0.0012"), 120, 30)
    assert Job.objects.get(id=job.id).calls_in_flight == 0
    bill = SpendEntry.objects.get(user=alice)
    assert bill.amount == Decimal("0.0012") and bill.reference == f"task:{task.id}:attempt:1"
    # The same answer stored again (a retried statement) changes nothing and bills nothing more.
    assert not task_outcome_save(job=claimed, outcome=answer("summary", cost="0.5"), calls_started=0,
                                 task_id=task.id)
    task.refresh_from_db()
    assert task.cost == Decimal("0.0012") and SpendEntry.objects.filter(user=alice).count() == 1


def test_a_stale_attempt_writes_and_bills_nothing(alice):
    job = queued_job(alice)
    stale = job_claim(job_id=job.id, worker="worker-a")
    job_call_started(job=stale)
    # The lease expired and another worker took the job over: attempt 2.
    Job.objects.filter(id=job.id).update(status=Job.Status.QUEUED)
    current = job_claim(job_id=job.id, worker="worker-b")
    assert current.attempts == stale.attempts + 1
    task = Task.objects.get(job=job, name="summary")
    assert not task_outcome_save(job=stale, outcome=answer("summary"), calls_started=1, task_id=task.id)
    task.refresh_from_db()
    assert task.status == Task.Status.PENDING and task.cost == 0 and task.output == ""
    assert not SpendEntry.objects.filter(user=alice).exists()
    # The new attempt's answer is stored and billed as usual.
    assert task_outcome_save(job=current, outcome=answer("summary"), calls_started=0, task_id=task.id)
    assert SpendEntry.objects.get(user=alice).reference == f"task:{task.id}:attempt:2"


def test_a_failed_outcome_is_stored_with_its_error_and_a_free_one_bills_nothing(alice):
    job = queued_job(alice)
    claimed = job_claim(job_id=job.id, worker="worker-a")
    task = Task.objects.get(job=job, name="owners")
    failed = TaskOutcome(name="owners", error="OpenAI refused the request", error_kind="bad_request", tries=1)
    assert task_outcome_save(job=claimed, outcome=failed, calls_started=0, task_id=task.id)
    task.refresh_from_db()
    assert (task.status, task.error, task.error_kind) == (Task.Status.FAILED, "OpenAI refused the request",
                                                          "bad_request")
    assert not SpendEntry.objects.filter(user=alice).exists()


def test_finalize_moves_only_the_attempt_that_holds_the_row_and_totals_its_tasks(alice):
    job = queued_job(alice)
    claimed = job_claim(job_id=job.id, worker="worker-a")
    for name, cost in (("summary", "0.0012"), ("owners", "0.0030")):
        task = Task.objects.get(job=job, name=name)
        task_outcome_save(job=claimed, outcome=answer(name, cost), calls_started=0, task_id=task.id)
    assert not job_finalize_row(job_id=job.id, status=Job.Status.FINISHED, error="",
                                from_statuses=(Job.Status.STARTED,), attempt=claimed.attempts + 1, callback_url="")
    assert Job.objects.get(id=job.id).status == Job.Status.STARTED
    assert job_finalize_row(job_id=job.id, status=Job.Status.FINISHED, error="", from_statuses=(Job.Status.STARTED,),
                            attempt=claimed.attempts, callback_url="")
    row = Job.objects.get(id=job.id)
    assert (row.status, row.total_cost) == (Job.Status.FINISHED, Decimal("0.0042"))
    assert row.finished_at is not None
    # A final state is final: a second party (the reconciler, a cancel) changes nothing.
    assert not job_finalize_row(job_id=job.id, status=Job.Status.FAILED, error="late",
                                from_statuses=(Job.Status.STARTED, Job.Status.QUEUED))
    assert Job.objects.get(id=job.id).status == Job.Status.FINISHED
