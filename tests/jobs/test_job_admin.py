"""Jobs in the Django admin: the list, a read-only detail with every task, and actions through the services."""

from __future__ import annotations

from decimal import Decimal

import django_rq
import pytest
from django.utils import timezone

from accounts.models import User
from analysis.engine.planning import TaskSpec
from jobs.models import Job, Task
from jobs.services import JobRequest, job_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    root = User.objects.create_superuser("root", "root@example.com", "a-long-admin-password-1")
    client.force_login(root)
    return client


def make_job(owner, *, provider="openai", model="gpt-4o-mini", status: str = "queued", **updates) -> Job:
    job = job_create(owner=owner, request=JobRequest(
        provider=provider, model=model, transcript="Alice: hello.\nBob: hi.",
        tasks=[TaskSpec(name="summary", prompt="Provide a brief summary"),
               TaskSpec(name="topics", prompt="List the topics")],
    ))
    Job.objects.filter(id=job.id).update(status=status, **updates)
    job.refresh_from_db()
    return job


def finish(job: Job, *, fail_topics: bool = False) -> None:
    now = timezone.now()
    Task.objects.filter(job=job, name="summary").update(
        status="succeeded", output="**Summary:** they greeted <script>alert(1)</script>", input_tokens=1234,
        output_tokens=56, cost=Decimal("0.00123400"), tries=2, calls=1, started_at=now, finished_at=now)
    if fail_topics:
        Task.objects.filter(job=job, name="topics").update(status="failed", error="OpenAI error 500: boom", tries=6)
    else:
        Task.objects.filter(job=job, name="topics").update(status="succeeded", output="greetings", cost=Decimal("0.0001"))
    Job.objects.filter(id=job.id).update(
        status="failed" if fail_topics else "finished", started_at=now, finished_at=now,
        total_cost=Task.objects.filter(job=job).values_list("cost", flat=True)[0])


def test_list_shows_owner_model_cost_and_progress(admin_client, alice, bob):
    job = make_job(alice)
    finish(job)
    make_job(bob, provider="gemini", model="gemini-2.5-flash")
    response = admin_client.get("/admin/jobs/job/")
    assert response.status_code == 200
    page = response.content.decode()
    assert str(job.id)[:8] in page
    assert "alice" in page and "bob" in page
    assert "gpt-4o-mini" in page and "gemini-2.5-flash" in page
    assert "2/2" in page and "0/2" in page
    assert "$0.001234" in page
    assert "Alice: hello" not in page  # no transcript in the list


def test_search_by_id_prefix_and_owner_and_filters(admin_client, alice, bob):
    alices = make_job(alice)
    bobs = make_job(bob, provider="gemini", model="gemini-2.5-flash", status="failed")

    def listed(query: str) -> set[str]:
        page = admin_client.get(f"/admin/jobs/job/?{query}").content.decode()
        return {prefix for prefix in (str(alices.id)[:8], str(bobs.id)[:8]) if prefix in page}

    assert listed(f"q={alices.id}") == {str(alices.id)[:8]}
    assert listed(f"q={str(bobs.id)[:6]}") == {str(bobs.id)[:8]}
    assert listed("q=bob") == {str(bobs.id)[:8]}
    assert listed("status__exact=failed") == {str(bobs.id)[:8]}
    assert listed("provider__exact=openai") == {str(alices.id)[:8]}
    assert listed("queue__exact=default") == {str(alices.id)[:8], str(bobs.id)[:8]}


def test_detail_shows_every_task_read_only_and_escaped(admin_client, alice):
    job = make_job(alice)
    finish(job, fail_topics=True)
    response = admin_client.get(f"/admin/jobs/job/{job.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Provide a brief summary", "List the topics", "1,234 input", "56 output", "$0.001234",
                 "OpenAI error 500: boom"):
        assert text in page, text
    # The answer drawn as the report draws it: its Markdown rendered, and the model's markup never taken as markup.
    assert "<strong>Summary:</strong> they greeted" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Read-only: no form to save, and a forged POST changes nothing.
    assert 'name="_save"' not in page
    response = admin_client.post(f"/admin/jobs/job/{job.id}/change/", {"status": "queued"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "failed"
    assert admin_client.get("/admin/jobs/job/add/").status_code == 403


def action(admin_client, name: str, *jobs: Job):
    return admin_client.post("/admin/jobs/job/", {"action": name, "_selected_action": [str(j.id) for j in jobs]},
                             follow=True)


def test_cancel_action_goes_through_job_cancel(admin_client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queued = make_job(alice)
    finished = make_job(alice)
    finish(finished)
    assert str(queued.id) in django_rq.get_queue("default").job_ids

    response = action(admin_client, "cancel_jobs", queued, finished)
    page = response.content.decode()
    assert "Canceled 1 job(s)." in page
    assert "cannot be canceled" in page  # the finished one: job_cancel's Conflict, shown, not a 500
    queued.refresh_from_db()
    finished.refresh_from_db()
    assert queued.status == "canceled" and finished.status == "finished"
    assert str(queued.id) not in django_rq.get_queue("default").job_ids


def test_retry_action_requeues_the_unfinished_tasks(admin_client, alice, django_capture_on_commit_callbacks):
    job = make_job(alice)
    finish(job, fail_topics=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = action(admin_client, "retry_jobs", job)
    assert "Retried 1 job(s)." in response.content.decode()
    job.refresh_from_db()
    assert job.status == "queued"
    assert dict(job.tasks.values_list("name", "status")) == {"summary": "succeeded", "topics": "pending"}
    assert str(job.id) in django_rq.get_queue("default").job_ids


def test_requeue_action_puts_a_lost_queued_job_back(admin_client, alice, clean_redis):
    job = make_job(alice)  # queued in PostgreSQL, never reached Redis (no commit in this test)
    assert django_rq.get_queue("default").count == 0
    response = action(admin_client, "requeue_jobs", job)
    assert "Requeued 1 job(s)." in response.content.decode()
    assert django_rq.get_queue("default").job_ids == [str(job.id)]

    finished = make_job(alice)
    finish(finished)
    response = action(admin_client, "requeue_jobs", finished)
    assert "only a queued job can be requeued" in response.content.decode()


def test_delete_action_goes_through_job_delete(admin_client, alice):
    job = make_job(alice)
    finish(job)
    response = action(admin_client, "delete_jobs", job)
    assert "Deleted 1 job(s)." in response.content.decode()
    assert not Job.objects.filter(id=job.id).exists()
    # Django's own bulk delete (which would bypass the service) is not offered.
    assert "delete_selected" not in admin_client.get("/admin/jobs/job/").content.decode()


def test_jobs_admin_needs_staff(client, alice):
    client.force_login(alice)
    response = client.get("/admin/jobs/job/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_queue_dashboard_is_staff_only(client, alice):
    from django.test import Client

    anonymous = Client()
    for url in ("/django-rq/", "/django-rq/queues/0/"):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert anonymous.get("/django-rq/stats.json").status_code == 401
    assert anonymous.get("/django-rq/metrics").status_code == 401

    client.force_login(alice)  # a user, not staff
    response = client.get("/django-rq/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    staff = Client()
    staff.force_login(User.objects.create_user("ops", password="x", is_staff=True))
    response = staff.get("/django-rq/")
    assert response.status_code == 200
    assert "default" in response.content.decode()
