"""The admin's charts: jobs per hour by status, spend by provider and model, queue wait (last day and week),
drawn server-side as SVG from the job rows in PostgreSQL, with the queues' current depth from Redis."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import user_upsert
from jobs.models import Job, Task
from jobs.services import job_enqueue
from tests.conftest import use_redis_url

pytestmark = pytest.mark.django_db


def job_at(owner, *, created_ago: timedelta, status: str = "finished", waited_s: float = 2.0,
           provider: str = "openai", model: str = "gpt-4o-mini", cost: str = "0.0012") -> Job:
    created = timezone.now() - created_ago
    started = created + timedelta(seconds=waited_s) if status != "queued" else None
    job = Job.objects.create(owner=owner, provider=provider, model=model, transcript="A: hi", status=status,
                             created_at=created, started_at=started,
                             finished_at=started + timedelta(seconds=1) if started and status != "started" else None)
    # Answered by the job's own model, as the worker stores it (the spend chart counts by the model that answered).
    Task.objects.create(job=job, position=0, name="summary", prompt="Sum up", cost=Decimal(cost), provider=provider,
                        model=model,
                        status="succeeded" if status == "finished" else "pending",
                        finished_at=job.finished_at)
    return job


@pytest.fixture
def operator(operators_group):
    olga, _ = user_upsert(username="olga", plan="pro", is_staff=True)  # an operator, not a superuser
    client = Client()
    client.force_login(olga)
    return client


def svg(page: str, kind: str, section: str) -> str:
    part = page.split(f'id="sr-{section}"', 1)[1]
    match = re.search(rf'<svg class="sr-chart" data-chart="{kind}".*?</svg>', part, re.S)
    assert match, f"no {kind} chart in the {section} section"
    return match.group(0)


def marks(chart: str) -> list[tuple[str, float]]:
    return [(series, float(value)) for series, value in
            re.findall(r'class="(?:bar|point)" data-series="([^"]+)" data-value="([^"]+)"', chart)]


def test_charts_show_the_job_rows(operator, alice):
    for hours in (1, 1, 3):
        job_at(alice, created_ago=timedelta(hours=hours), waited_s=2.0)
    job_at(alice, created_ago=timedelta(hours=2), status="failed", waited_s=10.0, provider="anthropic",
           model="claude-haiku-4-5", cost="0.5")
    job_at(alice, created_ago=timedelta(minutes=5), status="queued", cost="0")
    job_at(alice, created_ago=timedelta(days=3), waited_s=30.0, cost="2")  # in the week only
    job_at(alice, created_ago=timedelta(days=9), cost="100")  # in neither
    response = operator.get("/admin/jobs/job/charts/")
    assert response.status_code == 200
    page = response.content.decode()

    day_jobs = marks(svg(page, "jobs", "day"))
    assert sum(v for s, v in day_jobs if s == "finished") == 3
    assert sum(v for s, v in day_jobs if s == "failed") == 1 and sum(v for s, v in day_jobs if s == "queued") == 1
    assert sum(v for _, v in marks(svg(page, "jobs", "week"))) == 6

    day_spend = marks(svg(page, "spend", "day"))
    # Money spent is money spent: the failed job's task was billed too. The queued one cost nothing yet.
    assert {s for s, _ in day_spend} == {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}
    assert sum(v for s, v in day_spend if s.startswith("openai")) == pytest.approx(0.0036)
    week_spend: dict[str, float] = {}
    for series, value in marks(svg(page, "spend", "week")):
        week_spend[series] = week_spend.get(series, 0) + value
    assert week_spend == {"openai/gpt-4o-mini": pytest.approx(2.0036), "anthropic/claude-haiku-4-5": pytest.approx(0.5)}

    waits = marks(svg(page, "wait", "day"))
    assert waits and max(v for s, v in waits if s == "p95") <= 10.0 and min(v for s, v in waits) >= 2.0
    week_waits = [v for s, v in marks(svg(page, "wait", "week")) if s == "median"]
    assert 30.0 in week_waits
    assert "<script" not in page.split('id="sr-day"')[1]  # drawn on the server, nothing to load


def test_an_empty_period_says_so(operator):
    page = operator.get("/admin/jobs/job/charts/").content.decode()
    assert 'data-chart="jobs" data-total="0"' in page and "no data in this period" in page


def test_the_queues_current_depth_comes_from_redis(operator, alice, clean_redis):
    job = job_at(alice, created_ago=timedelta(minutes=1), status="queued")
    job_enqueue(job_id=job.id)
    page = operator.get("/admin/jobs/job/charts/").content.decode()
    assert re.search(rf'data-queue="{job.queue}" data-queued="1"', page)


def test_with_redis_down_the_charts_still_draw(operator, alice, settings):
    job_at(alice, created_ago=timedelta(hours=1))
    use_redis_url(settings, "redis://127.0.0.1:1/0")
    page = operator.get("/admin/jobs/job/charts/").content.decode()
    assert "Redis is unreachable" in page
    assert sum(v for _, v in marks(svg(page, "jobs", "day"))) == 1


def test_the_front_page_links_the_charts(operator):
    page = operator.get("/admin/").content.decode()
    assert 'href="/admin/jobs/job/charts/"' in page


def test_charts_need_staff(client, alice):
    client.force_login(alice)
    assert client.get("/admin/jobs/job/charts/").status_code == 302  # to the login page


def axis_labels(chart: str) -> list[str]:
    return re.findall(r'<text x="[0-9.]+" y="[0-9.]+" text-anchor="end" fill="#555">([^<]*)</text>', chart)


@pytest.mark.parametrize("waits", [(2.0, 250.0), (0.3, 0.9), (3.0, 40.0), (5.0, 9000.0)])
def test_the_queue_wait_axis_has_one_unit_and_even_steps(operator, alice, waits):
    for waited in waits:
        job_at(alice, created_ago=timedelta(hours=5), waited_s=waited)
    page = operator.get("/admin/jobs/job/charts/").content.decode()
    chart = svg(page, "wait", "day")
    labels = axis_labels(chart)
    assert len(labels) == 5, labels
    numbers, units = zip(*(label.split(" ") for label in labels))
    assert len(set(units)) == 1, labels
    assert len({len(number.partition(".")[2]) for number in numbers}) == 1, labels  # the same decimals
    steps = {round(float(b) - float(a), 6) for a, b in zip(numbers, numbers[1:])}
    assert len(steps) == 1 and float(numbers[0]) == 0, labels
    top_seconds = float(numbers[-1]) * {"s": 1, "min": 60, "h": 3600}[units[0]]
    assert max(waits) * 0.9 <= max(value for _, value in marks(chart)) <= top_seconds


def test_the_breadcrumbs_read_with_spaces(operator):
    # Django's admin separates its breadcrumb items with whitespace; items written back to back read "Home ›Jobs".
    page = operator.get("/admin/jobs/job/charts/").content.decode()
    breadcrumbs = re.search(r'<ol class="breadcrumbs">(.*?)</ol>', page, re.S).group(1)
    assert "Charts" in breadcrumbs and not re.search(r"</li><li", breadcrumbs), breadcrumbs
