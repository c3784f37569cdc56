"""Ask jobs in the Django admin: listed like other jobs with their question, and a detail page with the question,
the scope and the meetings it was resolved to."""

from __future__ import annotations

import pytest

from jobs.submission import job_ask
from tests.jobs.asking import store
from tests.jobs.test_job_admin import admin_client, make_job  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_ask_jobs_are_listed_with_their_question_and_filtered_by_kind(admin_client, alice):  # noqa: F811
    store(alice, "TS3010a", tags=("design",))
    question = "What did the designers decide about the <b>remote</b> control's shape and colour, and who owns it?"
    asked, _ = job_ask(owner=alice, question=question, provider="openai", model="gpt-4o-mini")
    analyzed = make_job(alice)
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert str(asked.id)[:8] in page and str(analyzed.id)[:8] in page
    # The question, cut to one line, whole on hover; escaped (a question is user text).
    assert "What did the designers decide about the &lt;b&gt;remote…</span>" in page
    assert f'title="{question.replace("<", "&lt;").replace(">", "&gt;").replace(chr(39), "&#x27;")}"' in page
    only_asks = admin_client.get("/admin/jobs/job/?kind__exact=ask").content.decode()
    assert str(asked.id)[:8] in only_asks and str(analyzed.id)[:8] not in only_asks


def test_an_ask_jobs_page_shows_its_question_scope_and_meetings(admin_client, alice):  # noqa: F811
    kept = store(alice, "TS3010a", tags=("design",))
    gone = store(alice, "ES2009b", 2, tags=("design",))
    job, _ = job_ask(owner=alice, question="Who owns the design?", provider="openai", model="gpt-4o-mini",
                     scope={"tag": "design"})
    gone_id = gone.pk
    gone.delete()  # the scope was resolved at submit: the meeting is listed as deleted since
    page = admin_client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "Who owns the design?" in page
    assert "Scope: {&quot;tag&quot;: &quot;design&quot;}; 2 meeting(s)." in page
    assert f"/admin/transcripts/transcript/{kept.pk}/change/" in page and "TS3010a" in page
    assert f"{gone_id} (deleted since)" in page
    assert "transcript_preview" not in page and "Transcript format" not in page
