"""The job document's exact shape: keys, order and JSON types, as the API, the webhook body and
`analyze --json` render it (one output serializer behind all three)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django.utils import timezone

from jobs.documents import job_document
from jobs.models import Job, Task
from jobs.webhooks import render_job
from scriptripper.renderers import JSONRenderer

USAGE_KEYS = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"]
TASK_KEYS = ["provider", "model", "fallback_from", "cost", "usage", "tries", "calls", "chunks", "reused", "truncated", "blocked", "finish_reason",
             "latency_s", "last_error", "price_version", "price_date"]


def finished_job(owner) -> Job:
    now = timezone.now()
    job = Job.objects.create(owner=owner, provider="openai", model="gpt-4o-mini", transcript="Alice: hi",
                             status=Job.Status.FINISHED, started_at=now, finished_at=now, attempts=1,
                             fallback_models=[{"provider": "anthropic", "model": "claude-haiku-4-5"}])
    # The first task fell back to Anthropic, as the worker stores it (jobs.worker.lifecycle.task_outcome_save).
    Task.objects.create(job=job, position=0, name="summary", prompt="Summarize", status=Task.Status.SUCCEEDED,
                        provider="anthropic", model="claude-haiku-4-5", fallback_from=[
                            {"provider": "openai", "model": "gpt-4o-mini", "reason": "server_error",
                             "message": "OpenAI server error: gave up after 3 attempts over 30 s"}],
                        output="A greeting.", cost=Decimal("0.0000771"), input_tokens=12, cached_input_tokens=3,
                        output_tokens=4, tries=2, calls=1, finish_reason="stop", latency_s=0.12345,
                        last_error="rate limit", price_version="0.2.3", price_date=dt.date(2026, 1, 1))
    Task.objects.create(job=job, position=1, name="actions", prompt="List actions", status=Task.Status.FAILED,
                        provider="openai", model="gpt-4o-mini", error="OpenAI error 500: boom", tries=1)
    Task.objects.create(job=job, position=2, name="later", prompt="Never started")
    return job


def test_the_job_document_keys_order_and_types(alice, alice_client):
    job = finished_job(alice)
    response = alice_client.get(f"/api/v1/jobs/{job.id}")
    assert response.status_code == 200
    body = json.loads(response.content, parse_float=Decimal)
    assert list(body) == ["job_id", "status", "queue", "processing", "batch", "attempts", "progress", "error", "partial",
                          "created_at", "started_at", "finished_at", "result", "transcript_id", "transcript_deleted",
                          "report_url"]
    assert body["job_id"] == str(job.id) and body["status"] == "finished" and body["attempts"] == 1
    assert body["progress"] == {"tasks_done": 2, "tasks_total": 3}
    assert body["error"] is None  # the worker writes how many failed (tests/jobs/test_job_report.py)
    assert body["partial"] is True  # finished, one task failed and one never ran
    assert body["report_url"] is None  # never shared
    assert all(isinstance(body[k], str) and body[k].endswith("Z") for k in ("created_at", "started_at", "finished_at"))
    result = body["result"]
    assert list(result) == ["results", "errors", "metadata", "speakers"]
    assert result["results"] == {"summary": "A greeting."}
    assert result["errors"] == {"actions": "OpenAI error 500: boom"}
    metadata = result["metadata"]
    assert list(metadata) == ["provider", "model", "fallback_models", "total_cost", "usage", "tasks", "lost_calls"]
    # The job's request stays the job's; each task says who answered it and what it fell back from.
    assert (metadata["provider"], metadata["model"]) == ("openai", "gpt-4o-mini")
    assert metadata["fallback_models"] == [{"provider": "anthropic", "model": "claude-haiku-4-5"}]
    assert metadata["total_cost"] == Decimal("0.0000771")
    assert list(metadata["usage"]) == USAGE_KEYS
    assert metadata["usage"]["input_tokens"] == 12 and metadata["usage"]["cached_input_tokens"] == 3
    assert list(metadata["tasks"]) == ["summary", "actions"]  # a pending task never tried is left out
    summary = metadata["tasks"]["summary"]
    assert list(summary) == TASK_KEYS
    assert summary["cost"] == Decimal("0.0000771") and summary["latency_s"] == Decimal("0.123")
    assert summary["last_error"] == "rate limit" and summary["price_date"] == "2026-01-01"
    assert (summary["provider"], summary["model"]) == ("anthropic", "claude-haiku-4-5")
    assert summary["fallback_from"] == [{"provider": "openai", "model": "gpt-4o-mini", "reason": "server_error",
                                         "message": "OpenAI server error: gave up after 3 attempts over 30 s"}]
    failed = metadata["tasks"]["actions"]
    assert (failed["provider"], failed["model"], failed["fallback_from"]) == ("openai", "gpt-4o-mini", [])
    assert failed["last_error"] is None and failed["price_version"] is None and failed["price_date"] is None
    assert failed["latency_s"] is None and failed["cost"] == 0
    assert b'"total_cost":0.0000771' in response.content  # a JSON number from the Decimal's digits


def test_the_webhook_body_and_the_cli_document_are_the_api_document(alice, alice_client):
    job = finished_job(alice)
    api = alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert json.loads(render_job(job)) == api
    assert json.loads(JSONRenderer().render(job_document(job))) == api


def test_a_queued_job_has_no_result(alice, alice_client):
    job = Job.objects.create(owner=alice, provider="openai", model="gpt-4o-mini", transcript="Alice: hi")
    Task.objects.create(job=job, position=0, name="summary", prompt="Summarize")
    body = alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert body["result"] is None and body["started_at"] is None and body["progress"] == {"tasks_done": 0,
                                                                                           "tasks_total": 1}
    assert body["partial"] is False and body["report_url"] is None
