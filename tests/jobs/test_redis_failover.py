"""Redis behind Sentinel: the primary SIGKILLed with jobs in flight, the replica promoted by the Sentinels; and a
primary that stops answering without closing its connections.

Everything is real: a private Redis primary with a replica and three Sentinels (tests/servers.py), two
`manage.py rqworker` processes and a gunicorn API configured with REDIS_SENTINELS (no REDIS_URL host in
use), the emulator as the provider. No process exits, every accepted job finishes, no task reaches the
provider twice, and the API answers 202 or 503 in the error shape throughout, and 202 again soon after
the promotion.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from rq import Worker
from rq.suspension import resume, suspend

from accounts.services import api_token_create
from jobs.models import Job
from scriptripper.redis_clients import redis_client
from tests.conftest import PROCESS_WAIT, ROOT, make_user, wait_answering, wait_for, worker_env
from tests.jobs.faults import (
    FAST, TEXT, WorkerProcess, assert_all_finished, children, sent, submit, task_prompts, wait_all_final,
)
from tests.servers import RedisSentinelGroup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

# What every process of the test is given besides the Sentinels: fast leases and reconciler passes (jobs
# accepted while Redis was away are enqueued by the next pass), and a provider limit above what the test
# sends (leases taken on the old primary and not released there stay on the new one until they expire).
SETTINGS = {**FAST, "WORKER_CONCURRENCY": "16", "PROVIDER_MAX_IN_FLIGHT": "200", "TASK_CONCURRENCY": "1"}
# The API's answers must come back to 202 within this long after the Sentinels name the new primary.
BACK_WITHIN_S = 5.0


class ApiServer:
    """gunicorn (one process, threads) on a free port, reading gunicorn.conf.py as deployed."""

    def __init__(self, env: dict[str, str], log_dir) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.log_path = log_dir / f"api-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "scriptripper.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--threads", "8", "--worker-class", "gthread"],
            cwd=ROOT, env=env, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> set[int]:
        """gunicorn's arbiter and its worker: a worker that died would be replaced under a new pid."""
        return {self.proc.pid, *children(self.proc.pid)}

    def output(self) -> str:
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(PROCESS_WAIT)


def post_job(url: str, token: str, prompts: dict[str, str]) -> tuple[int, str, dict]:
    """POST one job; its status, Content-Type and body (an error status too)."""
    body = json.dumps({"transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": prompts,
                       "reuse": False}).encode()
    request = urllib.request.Request(f"{url}/api/v1/jobs/analyze", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read() or b"null")


class Submitter(threading.Thread):
    """Submits a job every `interval` seconds until stopped, recording when each request started and ended
    (epoch seconds), its answer, and the prompts of each accepted job."""

    def __init__(self, url: str, token: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.interval = url, token, interval
        self.answers: list[dict] = []
        self.accepted: dict[str, dict[str, str]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set():
            prompts = task_prompts(f"switch{n}", 1)
            n += 1
            started = time.time()
            status, content_type, body = post_job(self.url, self.token, prompts)
            self.answers.append({"started": started, "ended": time.time(), "status": status,
                                 "type": content_type, "body": body})
            if status == 202:
                self.accepted[body["job_id"]] = prompts
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join(PROCESS_WAIT)


def test_primary_killed_mid_run_replica_promoted_nothing_lost_nothing_twice(emulator, tmp_path):
    token = api_token_create(user=make_user("failover", plan="pro")).secret
    with RedisSentinelGroup(tmp_path / "redis") as group:
        env = {**SETTINGS, **group.env()}
        api = ApiServer(worker_env(emulator, **env), tmp_path)
        workers = [WorkerProcess(emulator, tmp_path, name, **env) for name in ("a", "b")]
        try:
            wait_answering(api.proc, lambda: post_job(api.url, token, {})[0] == 400, "the API", api.log_path)
            gunicorn = api.processes()
            # Twenty jobs queued while both workers are suspended, then taken at once: twenty calls in flight,
            # held by both workers, however long the submissions took.
            primary = group.client(group.primary_port)
            suspend(primary)
            wait_for(lambda: [str(w.get_state()) for w in Worker.all(connection=primary)] == ["suspended"] * 2,
                     PROCESS_WAIT, "both workers suspended")
            emulator.configure(latency=3.0)
            before: dict[str, dict[str, str]] = {}
            for n in range(20):
                prompts = task_prompts(f"before{n}", 1)
                status, _, body = post_job(api.url, token, prompts)
                assert status == 202, body
                before[body["job_id"]] = prompts
            resume(primary)
            wait_for(lambda: emulator.stats()["in_flight"] == 20, PROCESS_WAIT, "twenty calls in flight")
            assert len(set(Job.objects.filter(id__in=list(before)).values_list("worker", flat=True))) == 2

            submitter = Submitter(api.url, token)
            submitter.start()
            killed_at = group.kill_primary()
            promoted_at = group.wait_promoted()
            time.sleep(BACK_WITHIN_S)  # the submissions go on meanwhile
            submitter.stop()
            # The API process's own monitoring reaches the new primary, and sees both workers there.
            health = json.load(urllib.request.urlopen(f"{api.url}/healthz", timeout=30))
            assert health["checks"]["redis"]["status"] == "ok" and health["checks"]["workers"]["alive"] == 2, health
            metrics = urllib.request.urlopen(f"{api.url}/metrics", timeout=30).read().decode()
            assert 'scriptripper_source_up{source="redis"} 1.0' in metrics

            accepted = {**before, **submitter.accepted}
            finished = wait_all_final(accepted)
            assert all(worker.alive() for worker in workers), [worker.output() for worker in workers]
            assert api.proc.poll() is None and api.processes() == gunicorn, api.output()
        finally:
            for worker in workers:
                worker.stop()
            api.stop()

    assert_all_finished(finished)
    # Each task reached the provider once: no job ran twice, none was lost.
    assert sum(job.lost_calls for job in finished.values()) == 0
    counts = {prompt: sent(emulator, prompt) for prompts in accepted.values() for prompt in prompts.values()}
    assert set(counts.values()) == {1}, {prompt: n for prompt, n in counts.items() if n != 1}

    answers = submitter.answers
    assert answers and {a["status"] for a in answers} <= {202, 503}, [(a["status"], a["body"]) for a in answers]
    for answer in answers:
        assert answer["type"].startswith("application/json"), answer
        if answer["status"] == 503:
            assert set(answer["body"]) == {"error"} and answer["body"]["error"]["code"] == "service_unavailable"
    assert any(killed_at < a["started"] < promoted_at for a in answers), "no submission while the primary was down"
    back = [a for a in answers if a["status"] == 202 and a["started"] >= promoted_at]
    assert back and back[0]["ended"] - promoted_at <= BACK_WITHIN_S, \
        [(round(a["started"] - promoted_at, 2), round(a["ended"] - promoted_at, 2), a["status"]) for a in answers]


def test_a_primary_that_stops_answering_is_given_up_and_the_new_one_found(emulator, tmp_path, alice_client, settings):
    """SIGSTOP: the primary keeps its connections open and answers nothing, as a lost host or a network cut
    leaves them. An idle worker, blocked on it, gives up on the socket and takes the next job from the new
    primary (left to RQ's socket timeout, sized for its own dequeue, it would wait minutes, past this test's wait)."""
    with RedisSentinelGroup(tmp_path / "redis") as group:
        env = {**SETTINGS, **group.env()}
        with WorkerProcess(emulator, tmp_path, **env) as worker:
            wait_for(lambda: Worker.all(connection=group.client(group.primary_port)), PROCESS_WAIT,
                     "the worker registered")
            frozen = group.servers[group.primary_port]
            frozen.send_signal(signal.SIGSTOP)
            try:
                group.wait_promoted()
                for name, value in group.project_settings().items():  # this process too, for the submission
                    setattr(settings, name, value)
                job_id = submit(alice_client, task_prompts("frozen", 1))
                job = wait_all_final([job_id])[job_id]
                assert worker.alive(), worker.output()
            finally:
                frozen.send_signal(signal.SIGCONT)
    assert job.status == "finished", job.error


def test_rq_gives_the_worker_connection_the_worker_socket_timeout(settings):
    """What the test above relies on: RQ's constructor sets the connection's socket timeout from the worker's
    connection_timeout (its own sizing, for its own blocking dequeue, would be minutes)."""
    from rq import Queue

    from jobs.worker import ScriptRipperWorker

    connection = redis_client(settings.RQ_QUEUES["default"])
    worker = ScriptRipperWorker([Queue("default", connection=connection)], connection=connection)
    assert worker.connection.connection_pool.connection_kwargs["socket_timeout"] == worker.connection_timeout == 10
