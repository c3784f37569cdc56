"""PgBouncer in transaction mode between the workers and PostgreSQL, restarted while every call is in flight:
as with PostgreSQL itself going away (tests/jobs/test_worker_in_flight.py), the answers received meanwhile wait
in the worker until they can be stored, and no paid answer is asked for again.

PgBouncer is Debian's package, started by the test (tests/servers.py) with a wildcard entry to the test
database's server; the workers run with DATABASE_POOL_MODE=transaction and DATABASE_URL through it.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.jobs.faults import database_outage_mid_run
from tests.servers import PgBouncer, pgbouncer_missing

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess,
              pytest.mark.skipif(bool(pgbouncer_missing()), reason=pgbouncer_missing() or "")]


def test_a_pgbouncer_restart_mid_run_loses_nothing_and_pays_nothing_twice(alice_client, emulator, tmp_path):
    db = connection.settings_dict
    bouncer = PgBouncer(pg_host=db.get("HOST") or "127.0.0.1", pg_port=int(db.get("PORT") or 5432),
                        users=(db.get("USER") or "root",)).start()
    try:
        # The pooler killed (every client and server connection drops) with answers on their way, held down a few
        # seconds after they came back, then started again on its port.
        database_outage_mid_run(alice_client, emulator, tmp_path, tag="bouncer", outage_s=3, cut=bouncer.stop,
                                restore=bouncer.start, DATABASE_URL=bouncer.url(db["NAME"]),
                                DATABASE_POOL_MODE="transaction")
    finally:
        bouncer.close()
