"""Helpers for the fault tests: real `rqworker` subprocesses, their horses, and what the provider saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from tests.conftest import ROOT, wait_for, worker_env

# Short leases and intervals so that recovery happens within seconds, not minutes.
FAST = {
    "JOB_LEASE_SECONDS": "3",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "JOB_HEARTBEAT_SECONDS": "0.5",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "TASK_CONCURRENCY": "1",  # tasks one after another: a kill lands between known tasks
    "PROVIDER_MAX_TRIES": "2",
    "LOG_LEVEL": "warning",
}

TEXT = ("Alice: We should ship the new onboarding flow next week.\n"
        "Bob: Agreed, but the billing page needs a review first.\n"
        "Alice: Then let's review it on Monday and ship on Thursday.\n")


def task_prompts(tag: str, n: int) -> dict[str, str]:
    # Distinct, non-overlapping instructions: the emulator's request log tells them apart.
    return {f"t{i}": f"[{tag}-{i}] Answer question number {i} about this meeting" for i in range(n)}


FORKING = "jobs.worker.ForkingWorker"


class WorkerProcess:
    """`python manage.py rqworker high default low` as a subprocess with its own log file
    (the default worker class, or `worker_class`, e.g. FORKING)."""

    def __init__(self, emulator, log_dir: Path, name: str = "w", *, worker_class: str | None = None,
                 **env: str) -> None:
        self.log_path = log_dir / f"worker-{name}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        extra = ["--worker-class", worker_class] if worker_class else []
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", "high", "default", "low", *extra],
            cwd=ROOT, env=worker_env(emulator, **{**FAST, **env}), stdout=self.log, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def horse_pid(self) -> int | None:
        for pid in children(self.pid):
            return pid
        return None

    def wait_horse(self, timeout: float = 20) -> int:
        return wait_for(self.horse_pid, timeout, "a work horse")

    def stop(self) -> None:
        horse = self.horse_pid()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if horse:
            try:
                os.kill(horse, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()[-4000:]


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command may contain spaces and parentheses: the fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def sent(emulator, prompt: str) -> int:
    """How many provider requests carried this task instruction."""
    return sum(prompt in json.dumps(r["body"]) for r in emulator.requests())


def terminate_other_backends() -> int:
    """pg_terminate_backend on every other connection to the test database (the workers')."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


class TcpProxy:
    """A TCP forwarder to `target` on a port of its own, which a test can cut off and restore:
    `down()` drops every connection and refuses new ones (PostgreSQL or Redis unreachable, as in a
    failover), `up()` listens again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._conns: list = []
        self._listener = None
        self.up()

    def up(self) -> None:
        listener = self._socket.socket()
        listener.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    close = down

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = self._socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass


class RedisServer:
    """A private redis-server on a free port, for tests that stop and restart Redis."""

    def __init__(self, tmp_path: Path) -> None:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), 10, "the private Redis to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
