"""One `rqworker` process holds many jobs in flight: slots, priority, stop, faults.

Every worker here is a real `manage.py rqworker high default low` subprocess with the default
class (jobs.worker.ScriptRipperWorker) against the real PostgreSQL and Redis, its provider calls
going to the emulator. Tests assert what happened (counts, order, what the provider saw), never
how long it took.
"""

from __future__ import annotations

import os
import signal

import django_rq
import pytest
from django.db import connection
from rq import Queue, Worker

from jobs.models import Job, Task
from tests.conftest import PROCESS_WAIT, client_for, make_user, use_redis_url, wait_for
from tests.jobs.faults import (
    RedisServer, TcpProxy, WorkerProcess, assert_all_finished, assert_sent_once_except_lost, database_outage_mid_run,
    sent, statuses, submit, submit_many, task_prompts, wait_all_final, wait_final,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]
# The tests marked so also run through PgBouncer in transaction mode (scripts/test.sh: pytest --pgbouncer -m
# pgbouncer): the slots' lifecycle writes, a kill, a cancel, a timeout, a shutdown.
through_pgbouncer = pytest.mark.pgbouncer


@pytest.fixture
def staff_client(db):
    return client_for(make_user("operator", is_staff=True))


@through_pgbouncer
def test_one_process_runs_many_jobs_at_once(alice_client, emulator, tmp_path, staff_client):
    emulator.configure(latency=2.0)
    jobs = submit_many(alice_client, "many", 12)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="16") as worker:
        wait_for(lambda: emulator.stats()["in_flight"] == 12, PROCESS_WAIT, "twelve calls in flight at once")
        # RQ's own records list every running job: one execution each, the worker busy.
        rq_worker = next(w for w in Worker.all(connection=django_rq.get_connection()) if w.pid == worker.pid)
        assert rq_worker.get_state() == "busy"
        assert {e.job_id for e in rq_worker.get_current_executions()} == set(jobs)
        assert Queue("default", connection=django_rq.get_connection()).started_job_registry.count == 12
        # The slot counts are published with the worker's heartbeat.
        listed = wait_for(lambda: [w for w in staff_client.get("/api/v1/queues").json()["workers"]
                                   if w["slots_busy"] == 12], PROCESS_WAIT, "the worker listed with 12 busy slots")
        assert [sorted(w["current_job_ids"]) for w in listed] == [sorted(jobs)]
        assert listed[0]["slots"] == 16 and len(listed[0]["current_jobs"]) == 12
        finished = wait_all_final(jobs)
    assert_all_finished(finished)
    assert len({job.worker for job in finished.values()}) == 1  # all in the one process
    # Every job started before the first one finished: they ran side by side, not one after another.
    assert max(job.started_at for job in finished.values()) < min(job.finished_at for job in finished.values())


def test_it_never_takes_more_jobs_than_it_has_slots(alice_client, emulator, tmp_path):
    emulator.configure(latency=1.0)
    jobs = submit_many(alice_client, "slots", 7)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="3", WORKER_HIGH_RESERVED_SLOTS="0"):
        wait_for(lambda: emulator.stats()["in_flight"] == 3, PROCESS_WAIT, "three calls in flight")
        # The rest stay in Redis, for other workers to take.
        assert Queue("default", connection=django_rq.get_connection()).count == 4
        assert_all_finished(wait_all_final(jobs))
    assert emulator.stats()["in_flight_max"] == 3


def test_reserved_slots_start_a_high_job_while_low_jobs_fill_the_rest(alice_client, emulator, tmp_path):
    emulator.configure(latency=3.0)
    carol = client_for(make_user("carol", plan="pro"))  # pro and short: routed to `high`
    backlog = submit_many(alice_client, "backlog", 6)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="4", WORKER_HIGH_RESERVED_SLOTS="1"):
        wait_for(lambda: emulator.stats()["in_flight"] == 3, PROCESS_WAIT, "three backlog jobs in flight")
        # Every slot a default job may take is busy; the reserved one stays free.
        assert statuses(backlog) == {"started": 3, "queued": 3}
        urgent = submit(carol, task_prompts("urgent", 1))
        assert Job.objects.get(id=urgent).queue == "high"
        wait_for(lambda: Job.objects.filter(id=urgent, status="started").exists(), PROCESS_WAIT,
                 "the high job to start")
        assert statuses(backlog) == {"started": 3, "queued": 3}  # it did not wait behind the backlog
        assert_all_finished(wait_all_final([urgent, *backlog]))
    assert emulator.stats()["in_flight_max"] == 4


def test_a_backlog_is_taken_in_priority_order_up_to_the_free_slots(alice_client, emulator, tmp_path):
    # Jobs waiting before the worker starts are taken a batch at a time (workers.TAKE_BATCH): the batch still serves
    # `high` before `default` and stops at the free slots.
    emulator.configure(latency=2.0)
    carol = client_for(make_user("carol", plan="pro"))  # pro and short: routed to `high`
    backlog = submit_many(alice_client, "backlog", 5)
    urgent = [submit(carol, task_prompts(f"urgent {n}", 1)) for n in range(2)]
    assert set(Job.objects.filter(id__in=urgent).values_list("queue", flat=True)) == {"high"}
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="4", WORKER_HIGH_RESERVED_SLOTS="0"):
        wait_for(lambda: emulator.stats()["in_flight"] == 4, PROCESS_WAIT, "four calls in flight")
        assert statuses(urgent) == {"started": 2}  # both, though queued after the backlog
        assert statuses(backlog) == {"started": 2, "queued": 3}
        assert Queue("default", connection=django_rq.get_connection()).count == 3  # left for other workers
        assert_all_finished(wait_all_final([*urgent, *backlog]))
    assert emulator.stats()["in_flight_max"] == 4


def test_a_worker_on_one_queue_takes_its_backlog_through_rqs_intermediate_list(alice_client, emulator, tmp_path):
    # With one queue, RQ moves a taken id to the queue's intermediate list (so that a crash between the take and the
    # start leaves it there for RQ's maintenance); the batch does the same, and each id leaves the list as its job
    # starts.
    emulator.configure(latency=2.0)
    jobs = submit_many(alice_client, "one queue", 5)
    default = Queue("default", connection=django_rq.get_connection())
    with WorkerProcess(emulator, tmp_path, queues=("default",), WORKER_CONCURRENCY="4",
                       WORKER_HIGH_RESERVED_SLOTS="0"):
        wait_for(lambda: emulator.stats()["in_flight"] == 4, PROCESS_WAIT, "four calls in flight")
        assert statuses(jobs) == {"started": 4, "queued": 1}
        assert default.count == 1
        assert default.connection.llen(default.intermediate_queue_key) == 0
        assert_all_finished(wait_all_final(jobs))
    assert emulator.stats()["in_flight_max"] == 4


@through_pgbouncer
def test_cancel_stops_one_running_job_and_leaves_the_others(alice_client, emulator, tmp_path):
    from emulator.server import faults

    emulator.configure(latency=1.0)
    target_prompts = task_prompts("stopme", 2)
    emulator.add_faults([faults.delay(20, "openai", match="[stopme-0]")])
    target = submit(alice_client, target_prompts)
    others = submit_many(alice_client, "keep", 4, tasks=2)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="8"):
        wait_for(lambda: Job.objects.filter(id=target, calls_in_flight=1).exists(), PROCESS_WAIT, "the target's call")
        response = alice_client.post(f"/api/v1/jobs/{target}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "canceled"
        # Settled while its provider call is still open: counted lost, nothing stored for it.
        wait_for(lambda: Job.objects.filter(id=target, lost_calls=1, calls_in_flight=0).exists(), PROCESS_WAIT,
                 "the canceled run's call counted as lost")
        assert sent(emulator, target_prompts["t0"]) == 0  # its request has not even returned yet
        finished = wait_all_final(others)
    assert_all_finished(finished)
    for job_id, job in finished.items():
        assert_sent_once_except_lost(emulator, job, others[job_id])
    # No further call was started for the canceled job.
    assert sent(emulator, target_prompts["t1"]) == 0
    assert Task.objects.filter(job_id=target, status="pending").count() == 2


@through_pgbouncer
def test_timeout_stops_one_job_among_many(alice_client, emulator, tmp_path, settings):
    from emulator.server import faults

    settings.JOB_TIMEOUT = 4  # carried by the RQ job to the worker
    emulator.configure(latency=0.5)
    emulator.add_faults([faults.delay(30, "openai", match="[slow-0]")])
    slow = submit(alice_client, task_prompts("slow", 1))
    others = submit_many(alice_client, "quick", 4)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="8", JOB_MAX_ATTEMPTS="1") as worker:
        job = wait_final(slow)
        assert emulator.stats()["in_flight"] >= 1  # stopped, not waited out: its call is still open
        finished = wait_all_final(others)
        assert worker.alive()
    assert job.status == "failed" and "timeout" in job.error and job.lost_calls == 1, job.error
    assert_all_finished(finished)


@through_pgbouncer
def test_sigkill_of_a_worker_holding_many_jobs_recovers_every_one(alice_client, emulator, tmp_path):
    emulator.configure(latency=1.0)
    jobs = submit_many(alice_client, "kill", 6, tasks=3)
    with WorkerProcess(emulator, tmp_path, "a", WORKER_CONCURRENCY="8") as first:
        wait_for(lambda: Task.objects.filter(job_id__in=list(jobs), status="succeeded").count() >= 6
                 and emulator.stats()["in_flight"] >= 4, PROCESS_WAIT, "tasks done and calls in flight")
        os.kill(first.pid, signal.SIGKILL)
        first.wait_exit()
        assert statuses(jobs).get("started", 0) >= 4
        with WorkerProcess(emulator, tmp_path, "b", WORKER_CONCURRENCY="8"):
            finished = wait_all_final(jobs)
    assert_all_finished(finished)  # 0 lost, 0 stuck
    for job_id, job in finished.items():
        assert_sent_once_except_lost(emulator, job, jobs[job_id], killed=True)  # no stored task sent again
    assert sum(job.lost_calls for job in finished.values()) >= 1


@through_pgbouncer
def test_sigterm_hands_back_idle_jobs_at_once_and_busy_ones_after_the_grace(alice_client, emulator, tmp_path):
    from emulator.server import faults

    emulator.configure(latency=0.5)
    emulator.add_faults([faults.delay(30, "openai", match="[stuck-0]", times=1)])
    stuck = submit(alice_client, task_prompts("stuck", 2))
    jobs = submit_many(alice_client, "term", 3, tasks=3)
    with WorkerProcess(emulator, tmp_path, "a", WORKER_CONCURRENCY="8", WORKER_SHUTDOWN_GRACE_SECONDS="3") as first:
        wait_for(lambda: Job.objects.filter(id=stuck, calls_in_flight=1).exists()
                 and Task.objects.filter(job_id__in=list(jobs), status="succeeded").count() >= 3, PROCESS_WAIT,
                 "the stuck call in flight and tasks done")
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0, first.output()
        # Nothing left started: every job handed back to the queue, the stuck call counted lost.
        assert statuses([stuck, *jobs]) == {"queued": 4}
        assert Job.objects.get(id=stuck).lost_calls == 1
        assert Queue("default", connection=django_rq.get_connection()).count == 4
        with WorkerProcess(emulator, tmp_path, "b", WORKER_CONCURRENCY="8"):
            finished = wait_all_final([stuck, *jobs])
    assert_all_finished(finished)
    for job_id in jobs:
        assert finished[job_id].lost_calls == 0
        assert_sent_once_except_lost(emulator, finished[job_id], jobs[job_id])
    # Handed back on shutdown: not counted as a failed attempt.
    assert all(job.attempts - job.attempts_base == 1 for job in finished.values())


def test_a_redis_outage_with_many_jobs_held_keeps_the_worker_and_every_job(alice_client, emulator, tmp_path,
                                                                            settings):
    private = RedisServer(tmp_path)
    use_redis_url(settings, private.url)
    try:
        emulator.configure(latency=1.5)
        jobs = submit_many(alice_client, "redis", 6, tasks=2)
        with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="8", REDIS_URL=private.url) as worker:
            wait_for(lambda: emulator.stats()["in_flight"] >= 6, PROCESS_WAIT, "six calls in flight")
            private.stop()
            # Redis is gone; the calls in flight answer and are stored in PostgreSQL all the same.
            wait_for(lambda: Task.objects.filter(job_id__in=list(jobs), status="succeeded").count() >= 6,
                     PROCESS_WAIT, "answers stored while Redis is down")
            assert worker.alive(), worker.output()
            private.start()  # back, and empty: the queued rows it forgot are enqueued again
            finished = wait_all_final(jobs)
            assert worker.alive(), worker.output()
    finally:
        private.stop()
    assert_all_finished(finished)
    for job_id, job in finished.items():
        assert_sent_once_except_lost(emulator, job, jobs[job_id])


def test_a_30_s_postgresql_outage_asks_no_paid_answer_again(alice_client, emulator, tmp_path):
    db = connection.settings_dict
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))
    url = f"postgresql://{db.get('USER') or 'root'}@127.0.0.1:{proxy.port}/{db['NAME']}"
    try:
        # PostgreSQL unreachable for the worker with answers on their way, for 30 s, as a failover can take; the
        # worker keeps the answers meanwhile.
        database_outage_mid_run(alice_client, emulator, tmp_path, tag="pgdown", outage_s=30, cut=proxy.down,
                                restore=proxy.up, DATABASE_URL=url)
    finally:
        proxy.close()


def test_worker_recycles_itself_after_max_jobs(alice_client, emulator, tmp_path):
    # Long enough that the second job's call is surely out before the first answers and the third take ends
    # the worker (a call not yet sent is handed back, one in flight finishes): on a loaded machine 0.5 s was not.
    emulator.configure(latency=1.5)
    jobs = submit_many(alice_client, "recycle", 5)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="2", WORKER_MAX_JOBS="3") as worker:
        assert worker.wait_exit() == 0, worker.output()  # exits by itself, for its manager to restart
        # It took three jobs and finished or handed back each; nothing is left started.
        assert set(statuses(jobs)) <= {"finished", "queued"} and statuses(jobs)["finished"] >= 2
        assert sum(Job.objects.filter(id__in=list(jobs)).values_list("attempts", flat=True)) == 3
        with WorkerProcess(emulator, tmp_path, "b", WORKER_CONCURRENCY="2"):
            finished = wait_all_final(jobs)
    assert_all_finished(finished)


# Not through PgBouncer: behind a pooler, PostgreSQL's own sessions are the pooler's, not the worker's.
def test_database_connections_stay_within_worker_db_connections(alice_client, emulator, tmp_path):
    db = connection.settings_dict
    url = (f"postgresql://{db.get('USER') or 'root'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
           f"/{db['NAME']}?application_name=sr-bound-test")
    emulator.configure(latency=0.4)
    jobs = submit_many(alice_client, "bound", 16, tasks=3)
    seen = []

    def sample() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sr-bound-test'")
            seen.append(cursor.fetchone()[0])
        return statuses(jobs).get("finished", 0) == len(jobs)

    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="16", WORKER_DB_CONNECTIONS="3",
                       TASK_CONCURRENCY="3", DATABASE_URL=url):
        wait_for(sample, PROCESS_WAIT, "every job to finish", interval=0.05)
    assert max(seen) >= 1  # the sampling saw the worker's connections
    assert max(seen) <= 3, max(seen)
    assert emulator.stats()["in_flight_max"] > 3  # while more calls than connections were in flight
