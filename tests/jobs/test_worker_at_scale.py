"""One worker process at hundreds of jobs in flight: every call of every job on the wire at once (each provider's
client pool sized from the settings, not capped by the smallest SDK default), the guarantees of the in-flight
worker kept at that scale (cancel of one job, SIGKILL recovery), the shared provider limit honoured, and a
worker that would run out of file descriptors refused at start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jobs.models import Job
from tests.conftest import PROCESS_WAIT, ROOT, wait_for, worker_env
from tests.jobs.faults import (
    FAST, WorkerProcess, assert_all_finished, assert_sent_once_except_lost, statuses, submit_many, wait_all_final,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

SCALE = 300


def at_scale(n: int, **extra: str) -> dict[str, str]:
    """Worker settings for n jobs in flight at once, and nothing else (every pool follows from these)."""
    return {"WORKER_CONCURRENCY": str(n), "WORKER_CALL_THREADS": str(n), "PROVIDER_MAX_IN_FLIGHT": str(n),
            "WORKER_HIGH_RESERVED_SLOTS": "0", **extra}


def submit_gemini_many(client, tag: str, n: int) -> dict[str, dict[str, str]]:
    """n single-task Gemini jobs: google-genai's plain client is the one whose default pool is smallest."""
    jobs = {}
    for i in range(n):
        prompts = {"t0": f"[{tag}{i}-0] Answer question number 0 about this meeting"}
        response = client.post("/api/v1/jobs/analyze", {
            "transcript": "Alice: we ship on Thursday.\nBob: I review billing on Monday.", "provider": "gemini",
            "model": "gemini-2.5-flash", "tasks": prompts, "reuse": False}, format="json")
        assert response.status_code == 202, response.content
        jobs[response.json()["job_id"]] = prompts
    return jobs


def test_hundreds_of_jobs_in_one_process_one_canceled_then_the_process_killed(alice_client, emulator, tmp_path):
    # Long enough for one process to start every job before the first answer, even on a loaded machine (the take
    # rate is CPU-bound).
    emulator.configure(latency=20.0)
    jobs = submit_gemini_many(alice_client, "scale", SCALE)
    target = next(iter(jobs))
    with WorkerProcess(emulator, tmp_path, "a", **at_scale(SCALE)) as first:
        # Every job's call on the wire at once, from one process, to the provider whose SDK pool is smallest.
        wait_for(lambda: emulator.stats()["in_flight"] >= int(SCALE * 0.95), PROCESS_WAIT,
                 f"{int(SCALE * 0.95)} calls in flight at once")
        canceled_at = time.monotonic()
        assert alice_client.post(f"/api/v1/jobs/{target}/cancel").status_code == 200
        wait_for(lambda: Job.objects.filter(id=target, lost_calls=1, calls_in_flight=0).exists(), PROCESS_WAIT,
                 "the canceled run settled")
        assert time.monotonic() - canceled_at < 2.0 + 1.0  # within 2 s, plus this loop's polling
        os.kill(first.pid, signal.SIGKILL)
        first.wait_exit()
        assert statuses(jobs).get("started", 0) >= SCALE - 10
        with WorkerProcess(emulator, tmp_path, "b", **at_scale(SCALE)):
            others = [job_id for job_id in jobs if job_id != target]
            finished = wait_all_final(others)
    assert_all_finished(finished)  # every one recovered by the other worker
    for job_id, job in finished.items():
        assert_sent_once_except_lost(emulator, job, jobs[job_id], killed=True)  # none answered twice
    assert Job.objects.get(id=target).status == "canceled"


def test_a_provider_limit_holds_with_hundreds_of_jobs_in_flight(alice_client, emulator, tmp_path):
    # Each call long enough that the worker has its 50 slots full whatever else the machine is doing.
    emulator.configure(latency=2.0)
    jobs = submit_many(alice_client, "limited", SCALE)
    # A task waits for a free slot within its retry budget: the suite's short one would give up behind 250 others.
    with WorkerProcess(emulator, tmp_path, **at_scale(SCALE, PROVIDER_MAX_IN_FLIGHT="50",
                                                     PROVIDER_RETRY_MAX_TOTAL="120")):
        finished = wait_all_final(jobs)
    assert_all_finished(finished)
    assert emulator.stats()["in_flight_max"] == 50  # the limit reached, never passed


def test_a_worker_short_of_file_descriptors_refuses_to_start_saying_what_it_needs(emulator, tmp_path):
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    env = worker_env(emulator, **{**FAST, **at_scale(1000)})
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "rqworker", "high", "default", "low", "--burst"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, preexec_fn=low_limit)
    assert result.returncode != 0
    assert "open files" in result.stderr and "ulimit -n" in result.stderr and "WORKER_CALL_THREADS=1000" in result.stderr


def test_connections_below_the_call_threads_are_refused_at_start_up(emulator):
    env = {**os.environ, "WORKER_CALL_THREADS": "200", "PROVIDER_HTTP_CONNECTIONS": "100",
           "DJANGO_SETTINGS_MODULE": "scriptripper.settings"}
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PROVIDER_HTTP_CONNECTIONS=100 is below WORKER_CALL_THREADS=200" in result.stderr
