"""The admin lists transcripts: title, date, owner, speakers, jobs and size; searched by title, filtered by tag."""

from __future__ import annotations

import pytest

from accounts.models import User
from analysis.engine.planning import TaskSpec
from jobs.services import JobRequest, job_create
from transcripts.services import transcript_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-admin-password-1"))
    return client


def test_the_list_shows_each_transcript_with_its_jobs_and_size(admin_client, alice, bob):
    text = "Ann: <b>Pricing</b> first.\nBen: Then the roadmap.\nCid: And hiring.\nDee: Lunch.\nEve: Done."
    weekly, _ = transcript_store(owner=alice, text=text, fmt="text", title="Weekly sync", tags=["sales"])
    transcript_store(owner=bob, text="Bob: Hi.", fmt="text", title="Bob's call", tags=["eng"])
    for _ in range(2):
        job_create(owner=alice, request=JobRequest(provider="openai", model="gpt-4o-mini", transcript=text,
                                                   tasks=[TaskSpec(name="summary", prompt="Summarize")]))
    page = admin_client.get("/admin/transcripts/transcript/").content.decode()
    assert "Weekly sync" in page and "Bob&#x27;s call" in page
    assert "Ann, Ben, Cid, Dee +1" in page and "5 turns" in page and "alice" in page
    assert '<td class="field-job_count">2</td>' in page and '<td class="field-job_count">0</td>' in page
    found = admin_client.get("/admin/transcripts/transcript/?q=weekly").content.decode()
    assert "Weekly sync" in found and "Bob&#x27;s call" not in found
    tagged = admin_client.get("/admin/transcripts/transcript/?tag=eng").content.decode()
    assert "Bob&#x27;s call" in tagged and "Weekly sync" not in tagged
    assert "sales (1)" in page  # the tag filter's choices
    detail = admin_client.get(f"/admin/transcripts/transcript/{weekly.id}/change/")
    assert detail.status_code == 200 and "&lt;b&gt;Pricing&lt;/b&gt;" in detail.content.decode()
    assert admin_client.get("/admin/transcripts/transcript/add/").status_code == 403
