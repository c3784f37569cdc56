"""Share links of a job's report page: the owner makes one (`POST /api/v1/jobs/{id}/share`), anyone with it reads
the report without a token; a revoke (`DELETE`) ends every link of the job at once; an expired, tampered or
revoked link, and another user's job, are a 404."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs.models import Job, Task
from jobs.sharing import share_path
from tests.conftest import assert_error

# The built-in profiles as the migrations leave them, whatever a transactional test on this worker flushed.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("builtin_profiles")]


def finished_job(owner, **fields) -> Job:
    now = timezone.now()
    job = Job.objects.create(owner=owner, provider="openai", model="gpt-4o-mini", profile_name="meeting-notes",
                             transcript="[00:00:01] Alice: We ship the beta on Friday.\n"
                                        "[00:00:05] Bob: I will write the release notes by Thursday.",
                             status=Job.Status.FINISHED, started_at=now, finished_at=now, **fields)
    Task.objects.create(job=job, position=0, name="summary", prompt="Summarize", status=Task.Status.SUCCEEDED,
                        output="The team ships the **beta** on Friday.")
    return job


def share(client, job) -> dict:
    response = client.post(f"/api/v1/jobs/{job.id}/share")
    assert response.status_code == 201, response.content
    return response.json()


def path_of(url: str) -> str:
    return urlparse(url).path


def test_the_owner_shares_and_anyone_with_the_link_reads_the_report(alice, alice_client, settings):
    settings.SHARE_LINK_DAYS = 7
    job = finished_job(alice)
    before = timezone.now()
    link = share(alice_client, job)
    assert set(link) == {"url", "expires_at"}
    assert link["url"].startswith("http://testserver/reports/")  # absolute, on the request's host
    expires = parse_datetime(link["expires_at"])
    assert before + timedelta(days=7) - timedelta(seconds=2) <= expires <= timezone.now() + timedelta(days=7)
    page = Client().get(path_of(link["url"]))  # no session, no token
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    body = page.content.decode()
    assert "Meeting notes" in body and "The team ships the <strong>beta</strong> on Friday." in body
    assert page["Referrer-Policy"] == "no-referrer"  # the token must not leave with a followed link
    assert "script-src" not in page["Content-Security-Policy"] and "default-src 'none'" in page["Content-Security-Policy"]


def test_the_job_document_carries_the_report_url_while_a_link_works(alice, alice_client):
    job = finished_job(alice)
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["report_url"] is None
    link = share(alice_client, job)
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["report_url"] == link["url"]
    assert alice_client.delete(f"/api/v1/jobs/{job.id}/share").status_code == 204
    assert alice_client.get(f"/api/v1/jobs/{job.id}").json()["report_url"] is None


def test_public_base_url_builds_the_links(alice, alice_client, settings):
    settings.PUBLIC_BASE_URL = "https://reports.example.com"
    job = finished_job(alice)
    link = share(alice_client, job)
    assert link["url"].startswith("https://reports.example.com/reports/")
    from jobs.documents import job_document

    job.refresh_from_db()
    assert job_document(job)["report_url"] == link["url"]  # the webhook body too, with no request


def test_a_revoke_ends_every_link_at_once(alice, alice_client):
    job = finished_job(alice)
    first, second = share(alice_client, job), share(alice_client, job)
    assert Client().get(path_of(first["url"])).status_code == 200  # an earlier link works until its own end
    assert alice_client.delete(f"/api/v1/jobs/{job.id}/share").status_code == 204
    for link in (first, second):
        response = Client().get(path_of(link["url"]))
        assert response.status_code == 404
        assert "not available" in response.content.decode()
    third = share(alice_client, job)
    assert Client().get(path_of(third["url"])).status_code == 200
    assert Client().get(path_of(first["url"])).status_code == 404


def test_an_expired_link_is_a_404(alice, alice_client):
    job = finished_job(alice)
    share(alice_client, job)
    job.refresh_from_db()
    expired = share_path(job_id=job.id, nonce=job.share_nonce, expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get(expired).status_code == 404
    still = share_path(job_id=job.id, nonce=job.share_nonce, expires_at=timezone.now() + timedelta(minutes=1))
    assert Client().get(still).status_code == 200


@pytest.mark.parametrize("tamper", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # the signature
    lambda token: token.replace(token.split(":")[0], token.split(":")[0][::-1]),  # the payload
    lambda token: "x",
    lambda token: token + ":extra",
])
def test_a_tampered_link_is_a_404(alice, alice_client, tamper):
    job = finished_job(alice)
    token = path_of(share(alice_client, job)["url"]).removeprefix("/reports/")
    assert Client().get(f"/reports/{tamper(token)}").status_code == 404


def test_a_link_signed_for_another_job_opens_nothing(alice, bob, alice_client):
    # Alice's nonce with Bob's job id: the signature holds the pair together.
    mine, bobs = finished_job(alice), finished_job(bob)
    share(alice_client, mine)
    mine.refresh_from_db()
    forged = share_path(job_id=bobs.id, nonce=mine.share_nonce, expires_at=mine.share_expires_at)
    assert Client().get(forged).status_code == 404


def test_another_users_job_cannot_be_shared_or_revoked(alice, bob_client):
    job = finished_job(alice)
    assert_error(bob_client.post(f"/api/v1/jobs/{job.id}/share"), 404, "not_found")
    assert_error(bob_client.delete(f"/api/v1/jobs/{job.id}/share"), 404, "not_found")
    job.refresh_from_db()
    assert job.share_nonce == "" and job.share_expires_at is None


def test_sharing_needs_a_token(alice, client):
    job = finished_job(alice)
    assert_error(client.post(f"/api/v1/jobs/{job.id}/share"), 401)


def test_a_deleted_jobs_link_is_a_404(alice, alice_client):
    job = finished_job(alice)
    link = share(alice_client, job)
    assert alice_client.delete(f"/api/v1/jobs/{job.id}").status_code == 204
    assert Client().get(path_of(link["url"])).status_code == 404


def test_the_report_page_is_read_only(alice, alice_client):
    link = share(alice_client, finished_job(alice))
    assert Client().post(path_of(link["url"])).status_code == 405


def test_staff_open_any_jobs_report_from_the_admin_and_nobody_else_does(alice, bob, admin_client):
    job = finished_job(alice)
    change = admin_client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    report_url = f"/admin/jobs/job/{job.id}/report/"
    assert f'href="{report_url}"' in change  # "View report"
    page = admin_client.get(report_url)
    assert page.status_code == 200 and "The team ships the <strong>beta</strong> on Friday." in page.content.decode()
    outsider = Client()
    outsider.force_login(bob)  # logged in, not staff
    assert outsider.get(report_url).status_code == 302  # to the admin's login page
    assert "beta" not in outsider.get(report_url, follow=True).content.decode()
