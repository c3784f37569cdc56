"""/metrics: Prometheus text computed at scrape time from PostgreSQL and Redis, read back with the
Prometheus client's own parser."""

from __future__ import annotations

from decimal import Decimal

import django_rq
import pytest
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from analysis.engine.planning import TaskSpec
from emulator.server import faults
from jobs.models import Job, Task
from jobs.services import JobRequest, job_create
from tests.conftest import transcript, use_redis_url, work_burst
from tests.ops.test_healthz import free_port, register_worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs in-process and closes connections


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        assert family.name.startswith("scriptripper_"), family.name
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def submit(owner, provider: str, model: str, tasks: dict[str, str]) -> Job:
    return job_create(owner=owner, request=JobRequest(
        provider=provider, model=model, transcript=transcript("TS3010a.txt"),
        tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in tasks.items()],
    ))


def test_metrics_reflect_the_database_and_the_queues(client, alice, bob, emulator):
    finished = submit(alice, "openai", "gpt-4o-mini", {"summary": "Provide a brief summary", "topics": "List topics"})
    # One task of the gemini job is refused with 401: a failed task of kind "auth".
    emulator.add_faults([faults.status(401, "gemini", match="Name the decisions", times=-1)])
    partial = submit(bob, "gemini", "gemini-2.5-flash", {"summary": "Provide a brief summary",
                                                         "decisions": "Name the decisions"})
    work_burst()
    waiting = submit(alice, "anthropic", "claude-haiku-4-5", {"summary": "Provide a brief summary"})
    register_worker()

    samples = scrape(client)

    # Jobs by status and queue, from the rows.
    assert value(samples, "scriptripper_jobs", status="finished", queue="default") == 2
    assert value(samples, "scriptripper_jobs", status="queued", queue="default") == 1
    assert value(samples, "scriptripper_jobs", status="failed", queue="high") == 0

    # Money and tokens: exactly what PostgreSQL holds, per provider and model.
    openai_cost = Task.objects.filter(job=finished).aggregate(s=Sum("cost"))["s"]
    assert openai_cost > 0
    assert Decimal(str(value(samples, "scriptripper_cost_usd_total", provider="openai", model="gpt-4o-mini"))) \
        == openai_cost.quantize(Decimal("0.00000001"))
    input_tokens = Task.objects.filter(job=finished).aggregate(s=Sum("input_tokens"))["s"]
    assert value(samples, "scriptripper_tokens_total", provider="openai", model="gpt-4o-mini", kind="input") \
        == input_tokens > 1000
    assert value(samples, "scriptripper_tasks_total", provider="gemini", model="gemini-2.5-flash",
                 status="failed") == 1
    assert value(samples, "scriptripper_provider_errors_total", provider="gemini", model="gemini-2.5-flash",
                 kind="auth") == 1

    # Durations: both finished jobs are in the histogram window, each under an hour.
    assert value(samples, "scriptripper_job_duration_seconds_count", queue="default", status="finished") == 2
    assert value(samples, "scriptripper_job_duration_seconds_bucket", queue="default", status="finished",
                 le="3600.0") == 2
    assert value(samples, "scriptripper_task_duration_seconds_count", provider="openai", model="gpt-4o-mini",
                 status="succeeded") == 2

    # Redis: the queued job waits on `default`, one worker registered and idle.
    assert value(samples, "scriptripper_queue_depth", queue="default") == 1
    assert value(samples, "scriptripper_queue_depth", queue="high") == 0
    assert value(samples, "scriptripper_queue_oldest_job_age_seconds", queue="default") >= 0
    assert value(samples, "scriptripper_workers", state="idle") == 1
    assert value(samples, "scriptripper_queue_workers", queue="low") == 1
    assert value(samples, "scriptripper_source_up", source="database") == 1
    assert value(samples, "scriptripper_source_up", source="redis") == 1
    assert partial.id and waiting.id

    # Computed at scrape time: a second scrape sees a job that appears in between.
    submit(alice, "openai", "gpt-4o-mini", {"summary": "Provide a brief summary"})
    again = scrape(client)
    assert value(again, "scriptripper_jobs", status="queued", queue="default") == 2
    assert value(again, "scriptripper_queue_depth", queue="default") == 2


def test_metrics_still_answer_with_redis_down(client, settings, db):
    use_redis_url(settings, f"redis://127.0.0.1:{free_port()}/0")
    samples = scrape(client)
    assert value(samples, "scriptripper_source_up", source="redis") == 0
    assert value(samples, "scriptripper_source_up", source="database") == 1
    assert ("scriptripper_queue_depth", (("queue", "default"),)) not in samples


def test_metrics_token(client, settings, db):
    settings.METRICS_TOKEN = "scrape-me-0123456789"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-me-0123456789")
    assert value(samples, "scriptripper_source_up", source="database") == 1


def test_openmetrics_when_the_scraper_asks_for_it(client, db):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


def test_no_process_memory_counters_leak_into_the_output(client, db):
    # Only the collector's figures: no python_gc_* / process_* of the one process that answered.
    text = client.get("/metrics").content.decode()
    assert "python_gc" not in text and "process_cpu" not in text
    assert django_rq.get_queue("default").count == 0
