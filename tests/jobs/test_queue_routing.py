from __future__ import annotations

import pytest

from jobs.models import Job
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db


def submit(client, transcript: str) -> Job:
    response = client.post("/api/v1/jobs/analyze", {"transcript": transcript, "provider": "openai",
                                                    "model": "gpt-4o-mini", "tasks": {"summary": "Summarize"}},
                           format="json")
    assert response.status_code == 202, response.content
    return Job.objects.get(id=response.json()["job_id"])


@pytest.mark.parametrize("plan,chars,queue", [
    ("pro", 1_000, "high"),
    ("free", 1_000, "default"),
    ("pro", 60_000, "default"),
    ("pro", 500_000, "low"),
    ("free", 500_000, "low"),
])
def test_routing_by_plan_and_length(settings, plan, chars, queue, django_capture_on_commit_callbacks, clean_redis):
    settings.ROUTING_HIGH_MAX_CHARS = 50_000
    settings.ROUTING_LOW_MIN_CHARS = 400_000
    client = client_for(make_user(f"user-{plan}", plan=plan))
    with django_capture_on_commit_callbacks(execute=True):
        job = submit(client, "Speaker A: hello there. " * (chars // 24 + 1))
    assert job.queue == queue
    # Enqueued on the plain RQ queue of that name, under the row's id.
    assert clean_redis.lrange(f"rq:queue:{queue}", 0, -1) == [str(job.id).encode()]
    assert client.get(f"/api/v1/jobs/{job.id}").json()["queue"] == queue
