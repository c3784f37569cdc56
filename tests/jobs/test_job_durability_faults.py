"""Faults produced for real: workers are `manage.py rqworker` subprocesses, killed, flushed, cut off.

The work-horse tests run the forking class (`--worker-class jobs.worker.ForkingWorker`); the
others the default worker. tests/jobs/test_worker_in_flight.py has the many-jobs-per-process ones.

Each test ends with every job final and every task that has a result sent to the
provider once; the only calls sent twice are the ones in flight when a process
died, and those are counted in the job's `lost_calls`.
"""

from __future__ import annotations

import os
import signal

import pytest

from emulator.server import faults
from jobs.models import Job
from tests.conftest import PROCESS_WAIT, wait_for
from tests.jobs.faults import (
    FORKING, WorkerProcess, assert_sent_once_except_lost, done, in_flight, sent, submit, task_prompts,
    terminate_other_backends, wait_final,
)

# Also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m pgbouncer).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess, pytest.mark.pgbouncer]


def slow_job(client, emulator, tag: str, latency: float) -> tuple[str, dict[str, str]]:
    """A job of three tasks against a provider taking `latency` seconds a call; its id and prompts."""
    emulator.configure(latency=latency)
    prompts = task_prompts(tag, 3)
    return submit(client, prompts), prompts


def wait_mid_job(job_id: str) -> None:
    wait_for(lambda: done(job_id) == 1 and in_flight(job_id), PROCESS_WAIT, "the first task done, the second in flight")


def wait_first_task(job_id: str) -> None:
    wait_for(lambda: done(job_id) == 1, PROCESS_WAIT, "the first task done")


def test_sigkill_of_the_work_horse_mid_job_reruns_only_the_unfinished_tasks(alice_client, emulator, tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "horse", latency=0.6)
    with WorkerProcess(emulator, tmp_path, worker_class=FORKING) as worker:
        wait_mid_job(job_id)
        # A call is counted in flight before it goes out: killed only once the provider is working on it.
        wait_for(lambda: emulator.stats()["in_flight"] >= 1, PROCESS_WAIT, "the second task's request at the provider")
        os.kill(worker.wait_horse(), signal.SIGKILL)
        job = wait_final(job_id)
    assert job.status == "finished", (job.error, worker.output())
    assert job.attempts == 2 and job.lost_calls == 1
    assert sent(emulator, prompts["t0"]) == 1  # stored before the kill: never sent again
    assert sent(emulator, prompts["t1"]) == 2  # in flight at the kill: paid, lost, counted
    assert_sent_once_except_lost(emulator, job, prompts)


def test_forking_worker_and_horse_sigkilled_job_finishes_on_another_worker_after_the_lease(alice_client, emulator,
                                                                                          tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "machine", latency=0.6)
    with WorkerProcess(emulator, tmp_path, "a", worker_class=FORKING) as first:
        wait_mid_job(job_id)
        horse = first.wait_horse()
        # The machine is gone: the worker and its horse (in its own process group) at once.
        os.kill(first.pid, signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        assert Job.objects.get(id=job_id).status == "started"
        with WorkerProcess(emulator, tmp_path, "b", worker_class=FORKING):
            job = wait_final(job_id)
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.lost_calls == 1
    assert sent(emulator, prompts["t0"]) == 1
    assert_sent_once_except_lost(emulator, job, prompts)


def test_sigkill_of_the_forking_worker_alone_lets_its_horse_finish_the_job(alice_client, emulator, tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "parent", latency=0.4)
    with WorkerProcess(emulator, tmp_path, worker_class=FORKING) as worker:
        wait_first_task(job_id)
        horse = worker.wait_horse()
        os.kill(worker.pid, signal.SIGKILL)
        job = wait_final(job_id)
        wait_for(lambda: not os.path.exists(f"/proc/{horse}") or
                 open(f"/proc/{horse}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", PROCESS_WAIT,
                 "the horse to exit")
    assert job.status == "finished" and job.attempts == 1 and job.lost_calls == 0
    assert_sent_once_except_lost(emulator, job, prompts)


def test_flushall_with_jobs_queued_and_running(alice_client, emulator, tmp_path, clean_redis):
    emulator.configure(latency=0.3)
    jobs = {}
    for n in range(3):
        prompts = task_prompts(f"flush{n}", 2)
        jobs[submit(alice_client, prompts)] = prompts
    with WorkerProcess(emulator, tmp_path):
        wait_for(lambda: Job.objects.filter(id__in=list(jobs), status="started").exists(), PROCESS_WAIT,
                 "a job to start")
        clean_redis.flushdb()  # the running job's RQ state and the queued jobs' deliveries are gone
        finished = {job_id: wait_final(job_id) for job_id in jobs}
    for job_id, job in finished.items():
        assert job.status == "finished", job.error
        assert_sent_once_except_lost(emulator, job, jobs[job_id])
        assert job.lost_calls == 0


def test_pg_terminate_backend_of_the_workers_connections(alice_client, emulator, tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "pgkill", latency=0.5)
    with WorkerProcess(emulator, tmp_path) as worker:
        wait_first_task(job_id)
        assert terminate_other_backends() >= 1
        # And again once the worker has reconnected (its heartbeat does within a second): the fresh
        # connections are cut too.
        wait_for(terminate_other_backends, PROCESS_WAIT, "the worker to reconnect")
        job = wait_final(job_id)
        # The worker goes on with fresh connections: its next job runs too.
        after = task_prompts("pgkill-after", 1)
        next_job = wait_final(submit(alice_client, after))
    assert job.status == "finished", (job.error, worker.output())
    assert_sent_once_except_lost(emulator, job, prompts)
    assert job.lost_calls == 0
    assert next_job.status == "finished"
    print(worker.output())
    assert "Traceback" not in worker.output()


def test_sigterm_hands_the_running_job_back_without_losing_calls(alice_client, emulator, tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "term", latency=1.0)
    with WorkerProcess(emulator, tmp_path, "a") as first:
        wait_mid_job(job_id)
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0, first.output()
        job = Job.objects.get(id=job_id)
        # Handed back: queued (the call in flight finished and was kept), not left started, and
        # the last task never sent (the worker started nothing more once told to stop).
        assert job.status == "queued", (job.status, first.output())
        assert done(job_id) == 2 and job.lost_calls == 0
        assert sent(emulator, prompts["t2"]) == 0
        with WorkerProcess(emulator, tmp_path, "b"):
            job = wait_final(job_id)
    assert job.status == "finished" and job.attempts == 2
    assert all(sent(emulator, p) == 1 for p in prompts.values())
    assert_sent_once_except_lost(emulator, job, prompts)


def test_cancel_stops_a_running_job_and_keeps_its_finished_tasks(alice_client, emulator, tmp_path):
    job_id, prompts = slow_job(alice_client, emulator, "cancel", latency=0.8)
    # The second task's call stays open for seconds, so the cancel surely lands while it is in flight
    # (at 0.8 s its answer could come back before the worker sees the cancel, and the run then ends
    # without being stopped: a different case from the one this test is about).
    emulator.add_faults([faults.delay(5, "openai", match="[cancel-1]")])
    with WorkerProcess(emulator, tmp_path):
        wait_mid_job(job_id)
        response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200, response.content
        data = response.json()
        assert data["status"] == "canceled"
        assert list(data["result"]["results"]) == ["t0"]
        # The run is stopped: the call in flight is counted lost, and nothing more is sent.
        wait_for(lambda: Job.objects.get(id=job_id).lost_calls == 1, PROCESS_WAIT, "the stopped call counted as lost")
        wait_for(lambda: emulator.stats()["in_flight"] == 0, PROCESS_WAIT, "the abandoned call to return")
        assert sent(emulator, prompts["t2"]) == 0
        job = Job.objects.get(id=job_id)
        assert job.status == "canceled" and done(job_id) == 1
        assert alice_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
        # The worker itself is fine and takes the next job.
        next_job = wait_final(submit(alice_client, task_prompts("cancel-after", 1)))
        assert next_job.status == "finished"
