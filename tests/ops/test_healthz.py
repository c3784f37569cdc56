"""/healthz: database, Redis and a recent worker; 200 or 503 saying what failed, fast even when Redis is down
(one connection attempt, bounded by HEALTHZ_TIMEOUT_SECONDS: no retry loop multiplies the wait)."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from django.utils import timezone
from rq import Worker

from tests.conftest import use_redis_url

pytestmark = pytest.mark.django_db


def register_worker(*, heartbeat_age_s: float = 0.0) -> Worker:
    """A worker registration as `rqworker` writes it (RQ's own code), without the process."""
    queues = [django_rq.get_queue(name) for name in settings.RQ_QUEUE_NAMES]
    worker = Worker(queues, connection=queues[0].connection)
    worker.register_birth()
    worker.set_state("idle")  # as it is while waiting for a job
    worker.heartbeat()
    if heartbeat_age_s:
        stale = timezone.now() - timedelta(seconds=heartbeat_age_s)
        worker.connection.hset(worker.key, "last_heartbeat", stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    return worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def connects(monkeypatch) -> list:
    """The addresses this process's sockets connect to from now on (socket.socket.connect, passed through)."""
    seen: list = []
    connect = socket.socket.connect

    def counted(sock, address):
        seen.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    return seen


def test_healthy_with_database_redis_and_a_live_worker(client):
    register_worker()
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == "ok"
    assert set(data["checks"]) == {"database", "redis", "workers"}
    assert all(check["status"] == "ok" for check in data["checks"].values())
    assert data["checks"]["workers"]["alive"] == 1
    assert response["Cache-Control"].startswith("max-age=0")
    assert client.get("/healthz/").status_code == 200  # with the slash too, no redirect


def test_no_worker_is_unhealthy_and_says_so(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "unhealthy"
    assert data["checks"]["database"]["status"] == "ok" and data["checks"]["redis"]["status"] == "ok"
    assert data["checks"]["workers"]["status"] == "error"
    assert "heartbeat" in data["checks"]["workers"]["error"]


def test_a_worker_silent_for_too_long_does_not_count(client, settings):
    settings.HEALTHZ_WORKER_MAX_AGE_SECONDS = 60
    register_worker(heartbeat_age_s=600)
    data = client.get("/healthz").json()
    assert data["status"] == "unhealthy" and data["checks"]["workers"]["alive"] == 0


def test_redis_stopped_answers_503_at_once(client, settings, connects):
    # Nothing listens on this port: what a stopped Redis looks like to the app.
    port = free_port()
    use_redis_url(settings, f"redis://127.0.0.1:{port}/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    data = response.json()
    assert data["status"] == "unhealthy"
    assert data["checks"]["database"]["status"] == "ok"
    assert data["checks"]["redis"]["status"] == "error" and "Connection" in data["checks"]["redis"]["error"]
    assert data["checks"]["workers"]["status"] == "error"
    assert connects.count(("127.0.0.1", port)) == 1  # refused once, and not tried again


def test_redis_hanging_answers_within_the_socket_timeout(client, settings, connects):
    # A Redis that accepts connections but never answers (overloaded, or a half-dead host).
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    address = server.getsockname()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        use_redis_url(settings, f"redis://127.0.0.1:{address[1]}/0")
        settings.HEALTHZ_TIMEOUT_SECONDS = 0.5
        response = client.get("/healthz")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"
    assert "Timeout" in response.json()["checks"]["redis"]["error"]
    # One connection and one timeout: no retry that would wait HEALTHZ_TIMEOUT_SECONDS again.
    assert connects.count(address) == 1


def test_the_error_never_shows_the_redis_password(client, settings):
    use_redis_url(settings, f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "hunter2" not in response.content.decode()


def test_no_token_needed_and_no_api_error_shape(client):
    register_worker()
    response = client.get("/healthz", HTTP_AUTHORIZATION="Bearer nonsense")
    assert response.status_code == 200
    assert "error" not in response.json()


@pytest.mark.subprocess
def test_a_real_redis_stopped_under_a_healthy_app(client, settings, tmp_path, connects):
    """Healthy, then the Redis process is killed: the next /healthz says so, trying it once."""
    import shutil

    from redis import Redis

    from tests.jobs.faults import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    private = RedisServer(tmp_path)
    try:
        worker = Worker([django_rq.get_queue("default").name], connection=Redis.from_url(private.url))
        worker.register_birth()
        worker.heartbeat()
        use_redis_url(settings, private.url)
        assert client.get("/healthz").status_code == 200

        private.stop()
        connects.clear()
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["checks"]["redis"]["status"] == "error"
        assert connects.count(("127.0.0.1", private.port)) == 1
    finally:
        private.stop()


@pytest.mark.subprocess
def test_database_down_answers_503_naming_the_database(emulator):
    """A process whose PostgreSQL does not answer (nothing listens on its port)."""
    import json

    from tests.conftest import run_manage, worker_env

    snippet = ("from django.test import Client; r = Client().get('/healthz'); "
               "print(r.status_code); print(r.content.decode())")
    env = worker_env(emulator, DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/scriptripper",
                     DB_CONNECT_TIMEOUT="1")
    result = run_manage("shell", "-c", snippet, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    status, body = result.stdout.strip().splitlines()[-2:]
    data = json.loads(body)
    assert status == "503" and data["status"] == "unhealthy"
    assert data["checks"]["database"]["status"] == "error"
    assert "OperationalError" in data["checks"]["database"]["error"]
    assert "nobody" not in data["checks"]["database"]["error"]  # no connection details on an open endpoint
    assert data["checks"]["redis"]["status"] == "ok"
