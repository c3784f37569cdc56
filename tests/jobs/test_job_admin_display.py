"""What the jobs admin shows: money as people read it, real durations, the reused answers and where from."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from jobs.admin import _duration, usd
from jobs.models import WebhookDelivery
from tests.jobs.test_job_admin import admin_client, make_job  # noqa: F401  (the fixture)
from tests.jobs.test_job_result_reuse import run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("value, text", [(Decimal("0E-8"), "$0.00"), (Decimal("0"), "$0.00"), (None, "$0.00"),
                                         (Decimal("0.00007710"), "$0.0000771"), (Decimal("1.5"), "$1.50"),
                                         (Decimal("12.34567891"), "$12.34567891"), (Decimal("3"), "$3.00")])
def test_money_reads_as_dollars(value, text):
    assert usd(value) == text


@pytest.mark.parametrize("seconds, text", [(0.421, "0.42 s"), (0.0, "0.00 s"), (12.34, "12.3 s"),
                                           (185, "3 min 05 s"), (7440, "2 h 04 min"), (None, "—")])
def test_durations_are_not_rounded_to_zero(seconds, text):
    assert _duration(seconds) == text


def test_a_reused_job_shows_zero_dollars_and_where_its_answers_came_from(admin_client, alice, alice_client,
                                                                        emulator):
    first = run(alice_client)
    second = run(alice_client)
    assert second["result"]["metadata"]["total_cost"] == 0
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "0E-8" not in page and "E-" not in page
    assert "$0.00 (2 reused)" in page
    assert "0:00:00" not in page
    detail = admin_client.get(f"/admin/jobs/job/{second['job_id']}/change/").content.decode()
    assert "2 of 2 answers reused at $0" in detail
    assert f'/admin/jobs/job/{first["job_id"]}/change/' in detail and first["job_id"][:8] in detail
    assert "reused from job" in detail
    # The job that paid shows its real bill.
    first_page = admin_client.get(f"/admin/jobs/job/{first['job_id']}/change/").content.decode()
    assert usd(Decimal(str(first["result"]["metadata"]["total_cost"]))) in first_page


def test_webhook_deliveries_heading(admin_client, alice):
    job = make_job(alice, status="finished")
    WebhookDelivery.objects.create(job=job, url="https://example.com/hook")
    page = admin_client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "Webhook deliveries" in page and "deliverys" not in page
    assert WebhookDelivery._meta.verbose_name_plural == "webhook deliveries"


def test_a_short_job_shows_its_duration(admin_client, alice):
    now = timezone.now()
    job = make_job(alice, status="finished", started_at=now - timedelta(milliseconds=420), finished_at=now)
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "0.42 s" in page and "0:00:00" not in page
