"""A provider unreachable for a while, then back: every job finishes (the retry budget is time, not tries).

Anthropic's base URL points at a port where nothing listens (connection refused, as while a local server
restarts or during an incident); two real workers run six jobs; after OUTAGE_S the emulator starts on that
port. PROVIDER_MAX_TRIES is 2 in these workers (tests.jobs.faults.FAST): a count of tries would have failed
every job; the time budget (PROVIDER_RETRY_MAX_TOTAL) waits the outage out. Time settings are short so the
test takes seconds; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import socket
import time

import pytest

from emulator.server import Emulator
from jobs.models import Job, Task
from tests.conftest import PROCESS_WAIT, wait_for
from tests.jobs.faults import TEXT, WorkerProcess, task_prompts, wait_all_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

OUTAGE_S = 8.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_provider_unreachable_for_a_while_then_back_every_job_finishes(alice_client, emulator, tmp_path):
    port = free_port()
    job_ids = []
    for n in range(6):
        response = alice_client.post("/api/v1/jobs/analyze", {
            "transcript": TEXT, "provider": "anthropic", "model": "claude-haiku-4-5",
            "tasks": task_prompts(f"outage{n}", 2), "reuse": False}, format="json")
        assert response.status_code == 202, response.content
        job_ids.append(response.json()["job_id"])
    env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}", "PROVIDER_RETRY_BASE_DELAY": "0.2",
           "PROVIDER_RETRY_MAX_DELAY": "1", "PROVIDER_RETRY_MAX_TOTAL": "120", "TASK_CONCURRENCY": "2"}
    back = None
    try:
        with (WorkerProcess(emulator, tmp_path, "a", **env), WorkerProcess(emulator, tmp_path, "b", **env)):
            # Calls are failing (and being retried) while nothing listens.
            wait_for(lambda: Job.objects.filter(id__in=job_ids, status="started").exists(), PROCESS_WAIT,
                     "a job to start")
            time.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
            assert not Task.objects.filter(job_id__in=job_ids).exclude(status="pending").exists()
            back = Emulator(host="127.0.0.1", port=port).start()
            wait_all_final(job_ids)
    finally:
        if back is not None:
            back.stop()
    jobs = list(Job.objects.filter(id__in=job_ids))
    assert {job.status for job in jobs} == {"finished"}, [(j.status, j.error) for j in jobs]
    tasks = Task.objects.filter(job_id__in=job_ids)
    assert all(t.status == "succeeded" for t in tasks)
    # The first calls met the outage: retried more often than PROVIDER_MAX_TRIES (2) would have allowed.
    assert max(t.tries for t in tasks) > 2
    assert any("connection" in t.last_error.lower() for t in tasks)
