"""The admin's job page as an operator reads it: compact fields, each task a section that folds, the prompt as
its author wrote it with the schema beside, structured answers drawn as the report draws them, times with
seconds, no empty table, a link to the report; and the list's "finished with errors" filter."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest

from analysis.engine.structured import TaskRequest, encode_task
from jobs.models import Job, Task, WebhookDelivery
from tests.jobs.test_job_admin import admin_client, make_job  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"action_items": {"type": "array", "items": {
    "type": "object", "properties": {"task": {"type": "string"}, "owner": {"type": ["string", "null"]},
                                     "citations": {"type": "array"}}}}}}
ANSWER = {"action_items": [{"task": "Book the ferry", "owner": "Bob", "citations": [{"turn": 2, "quote": "hi there"}]},
                           {"task": "Tell the customers", "owner": None, "citations": []}]}
STARTED = datetime(2026, 3, 4, 9, 15, 42, tzinfo=tz.utc)


def structured_job(owner) -> Job:
    job = make_job(owner, status="finished", started_at=STARTED, finished_at=STARTED + timedelta(seconds=3))
    Task.objects.filter(job=job, name="topics").update(
        prompt=encode_task(TaskRequest(prompt="List the action items", schema=SCHEMA)), status="succeeded",
        output=json.dumps({"value": ANSWER, "citations_checked": 2, "citations_rejected": 1}))
    Task.objects.filter(job=job, name="summary").update(status="succeeded", output="They *greeted*.",
                                                        cost=Decimal("0.0012"))
    return job


def page_of(admin_client, job) -> str:  # noqa: F811
    response = admin_client.get(f"/admin/jobs/job/{job.id}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_prompt_as_written_with_its_schema_beside(admin_client, alice):  # noqa: F811
    page = page_of(admin_client, structured_job(alice))
    assert "sr-task/1" not in page  # the stored envelope is not what anyone wrote
    assert "<pre>List the action items</pre>" in page
    schema = html.unescape(re.search(r'<pre class="sr-schema">(.*?)</pre>', page, re.S).group(1))
    assert json.loads(schema) == SCHEMA and '\n  "properties": {' in schema  # pretty-printed


def test_a_structured_answer_is_a_table_with_its_citations_as_links(admin_client, alice):  # noqa: F811
    job = structured_job(alice)
    page = page_of(admin_client, job)
    assert '"value"' not in page and "citations_checked" not in page.replace('"citations_checked"', "")
    table = re.search(r'<div class="sr-answer">.*?</table>', page, re.S).group(0)
    assert "<th scope=\"col\">Task</th><th scope=\"col\">Owner</th><th scope=\"col\">Sources</th>" in table
    assert "Book the ferry" in table and '<span class="none">not stated</span>' in table
    assert f'href="/admin/jobs/job/{job.id}/report/#turn-2"' in table  # the cited turn, in the report
    assert "2 citations checked against the transcript, 1 rejected." in page
    assert "They <em>greeted</em>." in page  # free text rendered from Markdown


def test_fields_sit_in_a_grid_and_tasks_fold(admin_client, alice):  # noqa: F811
    page = page_of(admin_client, structured_job(alice))
    assert page.count('class="module aligned sr-grid"') == 2
    sections = re.findall(r'<details class="sr-task sr-task-(\w+)" id="task-([\w-]+)"', page)
    assert sections == [("succeeded", "summary"), ("succeeded", "topics")]


def test_times_have_seconds(admin_client, alice):  # noqa: F811
    page = page_of(admin_client, structured_job(alice))
    assert "2026-03-04 09:15:42" in page and "2026-03-04 09:15:45" in page


def test_no_empty_webhook_table_and_a_full_one_when_there_are_deliveries(admin_client, alice):  # noqa: F811
    job = structured_job(alice)
    assert "Webhook deliveries" not in page_of(admin_client, job)
    WebhookDelivery.objects.create(job=job, url="https://example.com/hook", message_id="msg_1", payload="{}")
    assert "Webhook deliveries" in page_of(admin_client, job)


def test_view_report_link(admin_client, alice):  # noqa: F811
    job = structured_job(alice)
    assert f'<a href="/admin/jobs/job/{job.id}/report/" class="viewsitelink">View report</a>' in page_of(admin_client, job)


def test_the_list_filters_jobs_finished_with_errors(admin_client, alice):  # noqa: F811
    clean = structured_job(alice)
    partial = structured_job(alice)
    Task.objects.filter(job=partial, name="topics").update(status="failed", error="OpenAI error 500: boom")
    failed = make_job(alice, status="failed")

    def listed(query: str) -> set[Job]:
        page = admin_client.get(f"/admin/jobs/job/?{query}").content.decode()
        return {job for job in (clean, partial, failed) if str(job.id)[:8] in page}

    assert listed("outcome=errors") == {partial}
    assert listed("outcome=clean") == {clean}
    assert "finished with errors" in admin_client.get("/admin/jobs/job/").content.decode()
