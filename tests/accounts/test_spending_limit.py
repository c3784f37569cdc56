"""The monthly spending limit and a job's max_cost, tried from both sides.

A submission is refused (402 budget_exceeded) when this month's real spend plus the
estimate's upper bound would pass the budget, and accepted when it would not; a job's
max_cost below the estimate's lower bound is refused (400); while running, the worker
starts no further task once the job's cost reaches max_cost or the owner's spend
reaches the budget.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import SpendEntry, User
from accounts.services import month_start, spend_record
from jobs.models import Job
from tests.conftest import client_for, make_user, transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary", "decisions": "List the decisions", "risks": "List the risks"}


def body(**extra) -> dict:
    return {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o",
            "tasks": TASKS, "max_output_tokens": 16000, **extra}


def estimate(client) -> tuple[Decimal, Decimal]:
    data = client.post("/api/v1/jobs/estimate", body(), format="json").json()
    return Decimal(str(data["cost_low"])), Decimal(str(data["cost_high"]))


def set_budget(user: User, amount: Decimal | None) -> None:
    User.objects.filter(pk=user.pk).update(monthly_budget=amount)


def test_submission_over_the_budget_is_402_and_says_what_is_left(alice_client, alice):
    _, high = estimate(alice_client)
    spend_record(user_id=alice.pk, reference="earlier-job", amount=Decimal("0.50"))
    set_budget(alice, Decimal("0.50") + high - Decimal("0.01"))

    response = alice_client.post("/api/v1/jobs/analyze", body(), format="json")
    assert response.status_code == 402, response.content
    error = response.json()["error"]
    assert error["code"] == "budget_exceeded"
    alice.refresh_from_db()
    left = (alice.monthly_budget - Decimal("0.50")).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    budget = alice.monthly_budget.quantize(Decimal("0.01"))
    assert f"only ${left} of your monthly budget of ${budget} is left" in error["message"]
    assert not Job.objects.filter(owner=alice).exists()

    # The batch endpoint is held to the same limit.
    batch = {**body(), "tasks": [{"task_name": k, "prompt": v} for k, v in TASKS.items()]}
    assert alice_client.post("/api/v1/jobs/batch", batch, format="json").status_code == 402


def test_submission_that_fits_the_budget_exactly_is_accepted(alice_client, alice):
    _, high = estimate(alice_client)
    spend_record(user_id=alice.pk, reference="earlier-job", amount=Decimal("0.50"))
    set_budget(alice, Decimal("0.50") + high.quantize(Decimal("0.01"), rounding="ROUND_UP"))
    assert alice_client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 202


def test_last_months_spend_does_not_count(alice_client, alice):
    _, high = estimate(alice_client)
    set_budget(alice, high + Decimal("0.01"))
    spend_record(user_id=alice.pk, reference="old", amount=Decimal("100"))
    SpendEntry.objects.filter(reference="old").update(created_at=month_start() - timedelta(seconds=1))
    assert alice_client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 202


def test_plan_default_budget_applies_without_a_personal_one(alice_client, alice, settings):
    settings.PLAN_MONTHLY_BUDGETS = {"free": 0.0, "pro": 500.0}
    assert alice_client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 402
    alice.plan = "pro"
    alice.save(update_fields=["plan"])
    assert alice_client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 202


def test_createtoken_monthly_budget_and_unlimited(db):
    call_command("createtoken", "carol", "--monthly-budget", "0")
    carol = User.objects.get(username="carol")
    assert carol.monthly_budget == Decimal("0")
    client = client_for(carol)
    assert client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 402
    call_command("createtoken", "carol", "--unlimited")
    assert client.post("/api/v1/jobs/analyze", body(), format="json").status_code == 202


def test_max_cost_below_the_lowest_estimate_is_400(alice_client):
    low, high = estimate(alice_client)
    too_low = (low / 2).quantize(Decimal("0.000001"))
    response = alice_client.post("/api/v1/jobs/analyze", body(max_cost=str(too_low)), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert "max_cost" in response.json()["error"]["fields"]
    # At or above the lower bound: accepted, and stored on the job.
    cap = high.quantize(Decimal("0.000001"), rounding="ROUND_UP")
    ok = alice_client.post("/api/v1/jobs/analyze", body(max_cost=str(cap)), format="json")
    assert ok.status_code == 202, ok.content
    assert Job.objects.get(id=ok.json()["job_id"]).max_cost == cap


@pytest.mark.parametrize("value", ["-1", "abc", "1e400", "1234567890123"])
def test_bad_max_cost_is_400(alice_client, value):
    response = alice_client.post("/api/v1/jobs/analyze", body(max_cost=value), format="json")
    assert response.status_code == 400
    assert "max_cost" in response.json()["error"]["fields"]


def run_one_task_at_a_time(settings) -> None:
    settings.TASK_CONCURRENCY = 1


def test_worker_starts_no_task_once_the_job_reached_max_cost(alice_client, settings, emulator):
    run_one_task_at_a_time(settings)
    job_id = alice_client.post("/api/v1/jobs/analyze", body(), format="json").json()["job_id"]
    # Any real call costs more than this: after the first task the cap is reached.
    Job.objects.filter(id=job_id).update(max_cost=Decimal("0.000001"))
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished"
    assert list(data["result"]["results"]) == ["summary"]
    assert "not run" in data["error"]
    assert len(emulator.requests()) == 1


def test_worker_starts_no_task_once_the_owner_reached_the_budget(alice_client, alice, settings, emulator):
    run_one_task_at_a_time(settings)
    job_id = alice_client.post("/api/v1/jobs/analyze", body(), format="json").json()["job_id"]
    # Jobs queued side by side pass the submit check together; by the time this one runs
    # the budget is nearly used up by others: one more call of any cost reaches it.
    set_budget(alice, Decimal("0.01"))
    spend_record(user_id=alice.pk, reference="others", amount=Decimal("0.00999999"))
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert list(data["result"]["results"]) == ["summary"]
    assert len(emulator.requests()) == 1


def test_account_shows_spend_this_month_and_what_is_left(alice_client, alice):
    set_budget(alice, Decimal("10"))
    spend_record(user_id=alice.pk, reference="a", amount=Decimal("1.25"))
    spend_record(user_id=alice.pk, reference="a", amount=Decimal("1.25"))  # same reference: billed once
    spend_record(user_id=alice.pk, reference="b", amount=Decimal("0.005"))
    data = alice_client.get("/api/v1/account").json()
    spending = data["spending"]
    assert spending["spent_this_month"] == 1.255
    assert spending["monthly_budget"] == 10
    assert spending["remaining"] == 8.745
    assert spending["currency"] == "USD"
    assert data["unlimited"] is False


def test_unlimited_account_shows_no_limit(db):
    dave = make_user("dave", unlimited=True)
    data = client_for(dave).get("/api/v1/account").json()
    assert data["spending"]["monthly_budget"] is None and data["spending"]["remaining"] is None
    assert data["rate_limits"] == {"submit": None, "api": None}


def test_job_whose_owner_is_already_over_budget_runs_nothing_and_says_why(alice_client, alice, emulator):
    job_id = alice_client.post("/api/v1/jobs/analyze", body(), format="json").json()["job_id"]
    set_budget(alice, Decimal("0.01"))
    spend_record(user_id=alice.pk, reference="others", amount=Decimal("0.01"))
    work_burst()
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "failed"
    assert "monthly spending limit" in data["error"]
    assert emulator.requests() == []


def test_sub_cent_budget_is_kept_and_shown(db):
    call_command("createtoken", "erin", "--monthly-budget", "0.0005")
    erin = User.objects.get(username="erin")
    assert erin.monthly_budget == Decimal("0.0005")
    response = client_for(erin).post("/api/v1/jobs/analyze", body(), format="json")
    assert response.status_code == 402
    assert "only $0.0005 of your monthly budget of $0.0005 is left" in response.json()["error"]["message"]
    assert client_for(erin).get("/api/v1/account").json()["spending"]["remaining"] == 0.0005


@pytest.mark.parametrize("value", ["0.0000001", "-1", "NaN", "abc", "1e20"])
def test_createtoken_refuses_a_budget_it_cannot_store(db, value):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="monthly-budget"):
        call_command("createtoken", "frank", "--monthly-budget", value)
