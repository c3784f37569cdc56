"""A job's report for people: a finished `meeting-notes` job read through a share link, its Markdown twin
(`GET /api/v1/jobs/{id}/report.md`), and what it says of failed, reused and fallback answers."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from emulator.server import faults
from jobs import report as report_module
from jobs.models import Job
from jobs.report import report_markdown
from tests.conftest import assert_error, transcript, work_burst

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_profiles")]

MEETING_TASKS = ["summary", "key_points", "decisions", "action_items", "open_questions"]


def submit(client, **body) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.vtt"), "provider": "openai", "model": "gpt-4o-mini", **body}, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    return response.json()["job_id"]


def shared_page(client, job_id: str) -> str:
    url = client.post(f"/api/v1/jobs/{job_id}/share").json()["url"]
    response = Client().get(url.removeprefix("http://testserver"))
    assert response.status_code == 200
    return response.content.decode()


def test_a_meeting_notes_report_links_every_citation_to_its_marked_turn(alice_client):
    job_id = submit(alice_client, profile="meeting-notes")
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished" and document["partial"] is False
    page = shared_page(alice_client, job_id)

    # Every task, in the profile's order.
    assert re.findall(r'<section class="task task-succeeded" id="task-[\w-]+" data-task="(\w+)"', page) == MEETING_TASKS
    assert "Meeting notes" in page and "Finished" in page
    # Structured answers are tables, not JSON.
    actions = page.split('data-task="action_items"')[1].split("</section>")[0]
    assert re.findall(r'<th scope="col">(\w+)</th>', actions) == ["Task", "Owner", "Due", "Sources"], actions
    assert '"citations"' not in page and "citations_checked" not in page

    # Every citation is a plain in-page link to a turn of the transcript panel, whose cited words are marked.
    items = document["result"]["results"]["action_items"]["action_items"]
    cited = [(citation["turn"], citation["quote"]) for item in items for citation in item["citations"]]
    assert cited
    for turn, quote in cited:
        assert f'href="#turn-{turn}"' in actions
        anchor = re.search(rf'<li id="turn-{turn}" class="turn cited">(.*?)</li>', page, re.S)
        assert anchor, turn
        marked = re.findall(r'<mark class="quote">(.*?)</mark>', anchor.group(1))
        assert any(html.unescape(mark).casefold().startswith(quote.split()[0].casefold()) for mark in marked), (
            quote, marked)
    # The transcript with turn numbers, times and speakers.
    assert re.search(r'<a class="turn-no" href="#turn-1">T1</a> <time>\d\d:\d\d:\d\d</time> <b class="speaker">', page)

    # Who spoke: talk time and words per speaker, drawn as SVG bars.
    speakers = document["result"]["speakers"]
    for kind, key in (("talk-time", "talk_time_s"), ("words", "words")):
        chart = re.search(rf'<svg class="sr-chart" data-chart="{kind}".*?</svg>', page, re.S).group(0)
        bars = dict(re.findall(r'class="bar" data-series="([^"]+)" data-value="([^"]+)"', chart))
        assert {name: float(value) for name, value in bars.items()} == {
            s["speaker"]: pytest.approx(float(s[key])) for s in speakers}

    # The footer: model, cost and tokens per task, and the total.
    footer = page.split('<footer class="costs">')[1]
    assert footer.count("openai/gpt-4o-mini") == len(MEETING_TASKS)
    assert "input" in footer and "output" in footer and "Total" in footer
    assert "<script" not in page


def test_the_markdown_report_is_what_the_cli_prints(alice, alice_client, bob_client, client):
    job_id = submit(alice_client, profile="meeting-notes")
    response = alice_client.get(f"/api/v1/jobs/{job_id}/report.md", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response["Content-Type"] == "text/markdown; charset=utf-8"
    text = response.content.decode()
    job = Job.objects.get(id=job_id)
    document = json.loads(alice_client.get(f"/api/v1/jobs/{job_id}").content, parse_float=Decimal)
    # Untitled, so named by its profile; dated when its transcript's meeting took place (stored with the job).
    assert text == report_markdown(document, title="Meeting notes", date=job.transcript_ref.occurred_at)
    assert text.startswith("# Meeting notes\n") and "## action_items" in text and "[T" in text
    # Its errors are the API's JSON, like every other endpoint's.
    assert_error(bob_client.get(f"/api/v1/jobs/{job_id}/report.md"), 404, "not_found")
    assert_error(client.get(f"/api/v1/jobs/{job_id}/report.md"), 401)


def test_a_job_with_a_failed_task_finished_with_errors(alice_client, emulator):
    emulator.add_faults([faults.status(400, "openai", match="List the topics", times=-1)])
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary", "topics": "List the topics"})
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished" and document["partial"] is True
    assert document["error"] == "1 of 2 task(s) failed (see `errors`)."
    assert set(document["result"]["errors"]) == {"topics"}
    page = shared_page(alice_client, job_id)
    assert '<body class="state-partial">' in page
    assert "Finished with errors: 1 of 2 tasks failed (topics)" in page
    assert '<section class="task task-failed" id="task-topics"' in page and "This task failed:" in page
    assert "# " in alice_client.get(f"/api/v1/jobs/{job_id}/report.md").content.decode()  # with errors too
    assert "(finished, with errors)" in alice_client.get(f"/api/v1/jobs/{job_id}/report.md").content.decode()


def test_a_reused_answer_says_so(alice_client):
    submit(alice_client, tasks={"summary": "Provide a brief summary"})
    again = submit(alice_client, tasks={"summary": "Provide a brief summary"})
    page = shared_page(alice_client, again)
    assert "Reused: copied from an earlier identical task, no model asked, $0." in page
    assert "1 of 1 answers were reused from an earlier identical task" in page
    assert "openai/gpt-4o-mini (reused)" in page


def test_an_answer_from_a_fallback_model_says_which(alice_client, monkeypatch):
    # Fallback models are another issue's: a task's metadata then names who answered and whom it replaced.
    job_id = submit(alice_client, tasks={"summary": "Provide a brief summary"})
    real = report_module.job_document

    def with_fallback(job, request=None):
        document = real(job, request)
        document["result"]["metadata"]["tasks"]["summary"].update(
            provider="anthropic", model="claude-haiku-4-5",
            fallback_from=[{"provider": "openai", "model": "gpt-4o-mini"}])
        return document

    monkeypatch.setattr(report_module, "job_document", with_fallback)
    page = shared_page(alice_client, job_id)
    assert ("Answered by the fallback model anthropic/claude-haiku-4-5 (after openai/gpt-4o-mini)." in page)
    markdown = report_markdown(with_fallback(Job.objects.get(id=job_id)), title="x")
    assert "_Answered by the fallback model anthropic/claude-haiku-4-5 (after openai/gpt-4o-mini)._" in markdown


def test_options_on_the_markdown_report_is_json(alice, alice_client):
    job = Job.objects.create(owner=alice, provider="openai", model="gpt-4o-mini", transcript="Alice: hi")
    response = alice_client.options(f"/api/v1/jobs/{job.id}/report.md")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
