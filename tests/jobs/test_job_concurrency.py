"""The tasks of a job run at once: a job takes about as long as its slowest task, not the sum."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.conftest import transcript, work_burst

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.pgbouncer]


def test_eight_tasks_at_one_second_each_take_about_one_second(alice_client, emulator):
    emulator.configure(latency=1.0)
    tasks = {f"q{i}": f"Question number {i}: what was said about topic {i}?" for i in range(8)}
    job_id = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini", "tasks": tasks,
    }, format="json").json()["job_id"]

    work_burst()

    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert data["status"] == "finished" and list(data["result"]["results"]) == list(tasks)
    # Concurrent, not one after another: every task started before any of them finished.
    rows = list(Job.objects.get(id=job_id).tasks.all())
    assert max(t.started_at for t in rows) < min(t.finished_at for t in rows)
    assert emulator.stats()["in_flight_max"] == 8
