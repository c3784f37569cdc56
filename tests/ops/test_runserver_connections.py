"""`manage.py runserver`, what a developer runs, holds no PostgreSQL connection for a client that has gone.

Django's development server serves each client connection on a thread of its own. With persistent
connections (`DB_CONN_MAX_AGE`, 60 s by default) a request leaves its thread's database connection
open for the next request of that thread, and nothing closed it when the thread ended: every new
client connection left one more PostgreSQL connection behind, until PostgreSQL's `max_connections`
ran out and the API answered 503.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest
from django.db import connection

from tests.conftest import ROOT, client_for, http_status, make_user, wait_answering, worker_env
from tests.ops.test_healthz import free_port

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

APPLICATION_NAME = "sr-runserver-test"
CLIENTS = 24


def server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
        return cursor.fetchone()[0]


def test_runserver_closes_a_client_threads_database_connection(emulator, tmp_path):
    token = client_for(make_user("dev"))._credentials["HTTP_AUTHORIZATION"]
    port = free_port()
    env = worker_env(emulator, DB_CONN_MAX_AGE="60")
    # The server's connections carry a name of their own, to be counted in pg_stat_activity.
    env["DATABASE_URL"] += f"?application_name={APPLICATION_NAME}"
    log = tmp_path / "runserver.log"
    server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload",
                               f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/account"
        wait_answering(server, lambda: http_status(f"http://127.0.0.1:{port}/healthz"), "runserver", log)
        for _ in range(CLIENTS):
            # A new client each time (urllib opens and closes a connection per request), as parallel
            # clients and browsers open them: each is served by a new thread of the server.
            request = urllib.request.Request(url, headers={"Authorization": token})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        # The main thread's connection (start-up checks) may stay; no client thread's may.
        held = server_connections()
        assert held <= 2, f"runserver holds {held} PostgreSQL connections after {CLIENTS} clients came and went"
    finally:
        server.terminate()
        server.wait(timeout=30)
