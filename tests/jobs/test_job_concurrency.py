"""The tasks of a job run at once: a job takes about as long as its slowest task, not the sum."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job
from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_tasks_at_one_second_each_take_about_one_second(alice_client, emulator):
    emulator.configure(latency=1.0)
    tasks = {f"q{i}": f"Question number {i}: what was said about topic {i}?" for i in range(8)}
    job_id = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini", "tasks": tasks,
    }, format="json").json()["job_id"]

    started = time.monotonic()
    work_burst()
    wall = time.monotonic() - started

    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and list(data["result"]["results"]) == list(tasks)
    job = Job.objects.get(id=job_id)
    ran = (job.finished_at - job.started_at).total_seconds()
    assert ran < 3.0, ran  # one after another: 8 s
    assert wall < 4.0, wall
    assert emulator.stats()["in_flight_max"] == 8
