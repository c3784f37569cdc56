"""Helpers for the fault tests: real `rqworker` subprocesses, their horses, the jobs they run, and what the
provider saw.

Every wait on a worker is bounded by PROCESS_WAIT, which only guards against a hang: a passing test goes on
as soon as the condition holds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from jobs.models import Job, Task
from tests.conftest import PROCESS_WAIT, ROOT, wait_for, worker_env

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


def submit(client, prompts: dict[str, str], **extra) -> str:
    """A job of these tasks on TEXT (OpenAI, no reuse of earlier answers); its id."""
    response = client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": prompts, "reuse": False, **extra,
    }, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def submit_many(client, tag: str, n: int, tasks: int = 1) -> dict[str, dict[str, str]]:
    """n jobs of `tasks` tasks each: job id -> its prompts."""
    jobs = {}
    for i in range(n):
        prompts = task_prompts(f"{tag}{i}", tasks)
        jobs[submit(client, prompts)] = prompts
    return jobs


def wait_final(job_id: str) -> Job:
    def final():
        job = Job.objects.get(id=job_id)
        return job if job.is_final else None
    return wait_for(final, PROCESS_WAIT, f"job {job_id} to end")


def wait_all_final(job_ids) -> dict[str, Job]:
    """Every one of these jobs once it has ended, by id."""
    return {job_id: wait_final(job_id) for job_id in job_ids}


def assert_all_finished(jobs: dict[str, Job]) -> None:
    assert {job.status for job in jobs.values()} == {"finished"}, [(job.status, job.error) for job in jobs.values()]


def done(job_id: str) -> int:
    return Task.objects.filter(job_id=job_id, status=Task.Status.SUCCEEDED).count()


def in_flight(job_id: str) -> bool:
    return Job.objects.filter(id=job_id, calls_in_flight__gt=0).exists()


def statuses(job_ids) -> dict[str, int]:
    """How many of these jobs are in each status."""
    counts: dict[str, int] = {}
    for status in Job.objects.filter(id__in=list(job_ids)).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


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


def database_outage_mid_run(client, emulator, tmp_path: Path, *, tag: str, outage_s: float, cut, restore,
                            **worker_env: str) -> None:
    """Four jobs of two tasks with every call in flight on one worker when its way to the database is `cut()`;
    the answers come back meanwhile, the outage lasts `outage_s` more, then `restore()`: the worker is alive,
    every job finishes, no call was lost and no paid answer was asked for again."""
    emulator.configure(latency=2.0)
    jobs = submit_many(client, tag, 4, tasks=2)
    with WorkerProcess(emulator, tmp_path, WORKER_CONCURRENCY="8", TASK_CONCURRENCY="2", **worker_env) as worker:
        wait_for(lambda: emulator.stats()["in_flight"] >= 8, PROCESS_WAIT, "every call in flight")
        cut()
        wait_for(lambda: len(emulator.requests()) >= 8, PROCESS_WAIT, "the answers sent back")
        time.sleep(outage_s)  # the outage itself, not a synchronisation
        assert worker.alive(), worker.output()
        restore()
        finished = wait_all_final(jobs)
        assert worker.alive(), worker.output()
    assert_all_finished(finished)
    for job_id, job in finished.items():
        assert job.lost_calls == 0
        assert all(sent(emulator, prompt) == 1 for prompt in jobs[job_id].values())


FORKING = "jobs.worker.ForkingWorker"


class WorkerProcess:
    """`python manage.py rqworker high default low` (or the given `queues`) as a subprocess with its own log
    file (the default worker class, or `worker_class`, e.g. FORKING). As a context manager, it is
    stopped (killed, with its horse) on the way out."""

    def __init__(self, emulator, log_dir: Path, name: str = "w", *, worker_class: str | None = None,
                 queues: tuple[str, ...] = ("high", "default", "low"), **env: str) -> None:
        self.log_path = log_dir / f"worker-{name}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        extra = ["--worker-class", worker_class] if worker_class else []
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", *queues, *extra],
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

    def wait_horse(self) -> int:
        return wait_for(self.horse_pid, PROCESS_WAIT, "a work horse")

    def wait_exit(self) -> int:
        """Its exit status, once it has exited by itself (after a SIGTERM, or recycling)."""
        return self.proc.wait(PROCESS_WAIT)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        horse = self.horse_pid()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(PROCESS_WAIT)
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
    """pg_terminate_backend on every other client connection to the test database (the workers')."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "AND backend_type = 'client backend'")
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
            # shutdown() first: close() alone leaves the socket listening until the accept() blocked on it
            # returns, which would let one more connection through the outage.
            try:
                listener.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
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
            if listener is not self._listener:  # accepted while going down: refused, as after it
                client.close()
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
            # shutdown() before close(): the other direction's thread is blocked in recv() on one of these,
            # and a close() alone would leave that connection open (to PostgreSQL: a session that never ends).
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


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
        wait_for(lambda: _pings(client), PROCESS_WAIT, "the private Redis to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(PROCESS_WAIT)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False
