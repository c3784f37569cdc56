"""PgBouncer in transaction mode between the workers and PostgreSQL, restarted while every call is in flight:
as with PostgreSQL itself going away (tests/jobs/test_worker_in_flight.py), the answers received meanwhile wait
in the worker until they can be stored, and no paid answer is asked for again.

PgBouncer is Debian's package, started by the test (tests/servers.py) with a wildcard entry to the test
database's server; the workers run with DATABASE_POOL_MODE=transaction and DATABASE_URL through it.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from tests.conftest import PROCESS_WAIT, wait_for
from tests.jobs.faults import WorkerProcess, assert_all_finished, sent, submit_many, wait_all_final
from tests.servers import PgBouncer, pgbouncer_missing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess,
              pytest.mark.skipif(bool(pgbouncer_missing()), reason=pgbouncer_missing() or "")]


def test_a_pgbouncer_restart_mid_run_loses_nothing_and_pays_nothing_twice(alice_client, emulator, tmp_path):
    db = connection.settings_dict
    bouncer = PgBouncer(pg_host=db.get("HOST") or "127.0.0.1", pg_port=int(db.get("PORT") or 5432),
                        users=(db.get("USER") or "root",)).start()
    try:
        emulator.configure(latency=2.0)
        jobs = submit_many(alice_client, "bouncer", 4, tasks=2)
        with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="8", TASK_CONCURRENCY="2",
                           DATABASE_URL=bouncer.url(db["NAME"]), DATABASE_POOL_MODE="transaction") as worker:
            wait_for(lambda: emulator.stats()["in_flight"] >= 8, PROCESS_WAIT, "every call in flight")
            bouncer.stop()  # every client and server connection of the pooler drops
            wait_for(lambda: len(emulator.requests()) >= 8, PROCESS_WAIT, "the answers sent back")
            time.sleep(3)  # the pooler stays down a while after the answers came back: the outage itself
            assert worker.alive(), worker.output()
            bouncer.start()
            finished = wait_all_final(jobs)
            assert worker.alive(), worker.output()
    finally:
        bouncer.close()
    assert_all_finished(finished)
    for job_id, job in finished.items():
        assert job.lost_calls == 0
        assert all(sent(emulator, prompt) == 1 for prompt in jobs[job_id].values())
