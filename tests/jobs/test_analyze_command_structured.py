"""The analyze command with schemas, citations and a language: structured answers rendered as Markdown
with their citations, --json gives the document."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from jobs.documents import job_document
from jobs.report import report_markdown
from jobs.models import Job
from tests.conftest import work_burst
from tests.jobs.test_analyze_command import VTT

SCHEMA = {"type": "object", "required": ["action_items"], "properties": {"action_items": {"type": "array", "items": {
    "type": "object", "required": ["task", "owner", "due", "citations"], "properties": {
        "task": {"type": "string"}, "owner": {"type": "string"}, "due": {"type": "string"},
        "citations": {"type": "array", "items": {"type": "object", "properties": {
            "turn": {"type": "integer"}, "quote": {"type": "string"}}}}}}}}}


def run(*args: str) -> str:
    out = StringIO()
    call_command("analyze", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_structured_answers_and_citations_render_as_markdown(alice, tmp_path):
    meeting = tmp_path / "ferry.vtt"
    meeting.write_text(VTT, encoding="utf-8")
    schema = tmp_path / "actions.json"
    schema.write_text(json.dumps(SCHEMA))
    job_id = run(str(meeting), "--user", "alice", "--task", "actions=List the action items",
                 "--schema", f"actions={schema}", "--task", "summary=Summarize", "--cite", "summary",
                 "--language", "en-GB", "--provider", "openai", "--model", "gpt-4o-mini").strip()
    job = Job.objects.get(id=job_id)
    assert job.language == "en-GB"
    work_burst()
    job.refresh_from_db()
    doc = job_document(job)
    out = report_markdown(doc, title="ferry.vtt")
    assert "## actions" in out and "**action_items**" in out
    assert '- emulated task — owner: emulated owner — due: emulated due ([T1] "' in out
    assert "_Citations: 2 checked against the transcript, 0 rejected._" in out
    assert "Sources:" in out and "[T2]" in out
    # --json prints the document itself: the JSON values as the API gives them.
    assert doc["result"]["results"]["actions"]["action_items"][0]["citations"][0]["turn"] == 1
