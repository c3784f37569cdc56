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
import time

import pytest

from jobs.models import Job, Task
from tests.conftest import wait_for
from tests.jobs.faults import FORKING, TEXT, WorkerProcess, sent, task_prompts, terminate_other_backends

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]


def submit(client, prompts: dict[str, str], **extra) -> str:
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": prompts, "reuse": False, **extra,
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def wait_final(job_id: str, timeout: float = 30) -> Job:
    def final():
        job = Job.objects.get(id=job_id)
        return job if job.is_final else None
    return wait_for(final, timeout, f"job {job_id} to end")


def done(job_id: str) -> int:
    return Task.objects.filter(job_id=job_id, status=Task.Status.SUCCEEDED).count()


def in_flight(job_id: str) -> bool:
    return Job.objects.filter(id=job_id, calls_in_flight__gt=0).exists()


def assert_sent_once_except_lost(emulator, job: Job, prompts: dict[str, str], *, killed: bool = False) -> None:
    """Every task has a result; each went to the provider once, plus the calls counted as lost.

    `killed`: a process was SIGKILLed, possibly between counting a call in flight (which comes first,
    so that no sent call goes uncounted) and sending it: a lost call may then never have reached the
    provider, and the count is an upper bound.
    """
    tasks = {t.name: t for t in job.tasks.all()}
    assert all(t.status == Task.Status.SUCCEEDED for t in tasks.values()), [(t.name, t.error) for t in tasks.values()]
    counts = {name: sent(emulator, prompt) for name, prompt in prompts.items()}
    assert all(c >= 1 for c in counts.values()), counts
    resent = sum(counts.values()) - len(counts)
    if killed:
        assert resent <= job.lost_calls, (counts, job.lost_calls)
    else:
        assert resent == job.lost_calls, (counts, job.lost_calls)


def test_sigkill_of_the_work_horse_mid_job_reruns_only_the_unfinished_tasks(alice_client, emulator, tmp_path):
    emulator.configure(latency=0.6)
    prompts = task_prompts("horse", 3)
    job_id = submit(alice_client, prompts)
    worker = WorkerProcess(emulator, tmp_path, worker_class=FORKING)
    try:
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id), 30, "the first task done, the second in flight")
        os.kill(worker.wait_horse(), signal.SIGKILL)
        job = wait_final(job_id)
    finally:
        worker.stop()
    assert job.status == "finished", (job.error, worker.output())
    assert job.attempts == 2 and job.lost_calls == 1
    assert sent(emulator, prompts["t0"]) == 1  # stored before the kill: never sent again
    assert sent(emulator, prompts["t1"]) == 2  # in flight at the kill: paid, lost, counted
    assert_sent_once_except_lost(emulator, job, prompts)


def test_forking_worker_and_horse_sigkilled_job_finishes_on_another_worker_after_the_lease(alice_client, emulator,
                                                                                          tmp_path):
    emulator.configure(latency=0.6)
    prompts = task_prompts("machine", 3)
    job_id = submit(alice_client, prompts)
    first = WorkerProcess(emulator, tmp_path, "a", worker_class=FORKING)
    second = None
    try:
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id), 30, "the first task done, the second in flight")
        horse = first.wait_horse()
        # The machine is gone: the worker and its horse (in its own process group) at once.
        os.kill(first.pid, signal.SIGKILL)
        os.kill(horse, signal.SIGKILL)
        assert Job.objects.get(id=job_id).status == "started"
        second = WorkerProcess(emulator, tmp_path, "b", worker_class=FORKING)
        job = wait_final(job_id, 40)
    finally:
        first.stop()
        if second:
            second.stop()
    assert job.status == "finished", job.error
    assert job.attempts == 2 and job.lost_calls == 1
    assert sent(emulator, prompts["t0"]) == 1
    assert_sent_once_except_lost(emulator, job, prompts)


def test_sigkill_of_the_forking_worker_alone_lets_its_horse_finish_the_job(alice_client, emulator, tmp_path):
    emulator.configure(latency=0.4)
    prompts = task_prompts("parent", 3)
    job_id = submit(alice_client, prompts)
    worker = WorkerProcess(emulator, tmp_path, worker_class=FORKING)
    try:
        wait_for(lambda: done(job_id) == 1, 30, "the first task done")
        horse = worker.wait_horse()
        os.kill(worker.pid, signal.SIGKILL)
        job = wait_final(job_id)
        wait_for(lambda: not os.path.exists(f"/proc/{horse}") or
                 open(f"/proc/{horse}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10, "the horse to exit")
    finally:
        worker.stop()
    assert job.status == "finished" and job.attempts == 1 and job.lost_calls == 0
    assert_sent_once_except_lost(emulator, job, prompts)


def test_flushall_with_jobs_queued_and_running(alice_client, emulator, tmp_path, clean_redis):
    emulator.configure(latency=0.3)
    jobs = {}
    for n in range(3):
        prompts = task_prompts(f"flush{n}", 2)
        jobs[submit(alice_client, prompts)] = prompts
    worker = WorkerProcess(emulator, tmp_path)
    try:
        wait_for(lambda: Job.objects.filter(id__in=list(jobs), status="started").exists(), 30, "a job to start")
        clean_redis.flushdb()  # the running job's RQ state and the queued jobs' deliveries are gone
        finished = {job_id: wait_final(job_id, 40) for job_id in jobs}
    finally:
        worker.stop()
    for job_id, job in finished.items():
        assert job.status == "finished", job.error
        assert_sent_once_except_lost(emulator, job, jobs[job_id])
        assert job.lost_calls == 0


def test_pg_terminate_backend_of_the_workers_connections(alice_client, emulator, tmp_path):
    emulator.configure(latency=0.5)
    prompts = task_prompts("pgkill", 3)
    job_id = submit(alice_client, prompts)
    worker = WorkerProcess(emulator, tmp_path)
    try:
        wait_for(lambda: done(job_id) == 1, 30, "the first task done")
        assert terminate_other_backends() >= 1
        time.sleep(0.3)
        terminate_other_backends()  # and again, whatever reconnected meanwhile
        job = wait_final(job_id)
        # The worker goes on with fresh connections: its next job runs too.
        after = task_prompts("pgkill-after", 1)
        next_job = wait_final(submit(alice_client, after))
    finally:
        worker.stop()
    assert job.status == "finished", (job.error, worker.output())
    assert_sent_once_except_lost(emulator, job, prompts)
    assert job.lost_calls == 0
    assert next_job.status == "finished"
    print(worker.output())
    assert "Traceback" not in worker.output()


def test_sigterm_hands_the_running_job_back_without_losing_calls(alice_client, emulator, tmp_path):
    emulator.configure(latency=1.0)
    prompts = task_prompts("term", 3)
    job_id = submit(alice_client, prompts)
    first = WorkerProcess(emulator, tmp_path, "a")
    second = None
    try:
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id), 30, "the first task done, the second in flight")
        first.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert first.proc.wait(15) == 0, first.output()
        assert time.monotonic() - started < 8  # within WORKER_SHUTDOWN_GRACE_SECONDS (5 s) and then some
        job = Job.objects.get(id=job_id)
        # Handed back: queued (the call in flight finished and was kept), not left started.
        assert job.status == "queued", (job.status, first.output())
        assert done(job_id) == 2 and job.lost_calls == 0
        second = WorkerProcess(emulator, tmp_path, "b")
        job = wait_final(job_id)
    finally:
        first.stop()
        if second:
            second.stop()
    assert job.status == "finished" and job.attempts == 2
    assert all(sent(emulator, p) == 1 for p in prompts.values())
    assert_sent_once_except_lost(emulator, job, prompts)


def test_cancel_stops_a_running_job_and_keeps_its_finished_tasks(alice_client, emulator, tmp_path):
    emulator.configure(latency=0.8)
    prompts = task_prompts("cancel", 3)
    job_id = submit(alice_client, prompts)
    worker = WorkerProcess(emulator, tmp_path)
    try:
        wait_for(lambda: done(job_id) == 1 and in_flight(job_id), 30, "the first task done, the second in flight")
        response = alice_client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200, response.content
        data = response.json()
        assert data["status"] == "canceled"
        assert list(data["result"]["results"]) == ["t0"]
        # The run is stopped: the call in flight is counted lost, and nothing more is sent.
        wait_for(lambda: Job.objects.get(id=job_id).lost_calls == 1, 10, "the stopped call counted as lost")
        wait_for(lambda: emulator.stats()["in_flight"] == 0, 10, "the abandoned call to return")
        assert sent(emulator, prompts["t2"]) == 0
        job = Job.objects.get(id=job_id)
        assert job.status == "canceled" and done(job_id) == 1
        assert alice_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 409
        # The worker itself is fine and takes the next job.
        next_job = wait_final(submit(alice_client, task_prompts("cancel-after", 1)))
        assert next_job.status == "finished"
    finally:
        worker.stop()
