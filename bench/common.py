"""Shared harness for the benchmarks: a bench database and Redis db, the emulator,
workers and gunicorn as real subprocesses, and a user exempt from limits.

Everything runs against the local PostgreSQL and Redis, in a database of its own
(`scriptripper_bench`) and Redis database 15, so development data is untouched (and the
test suite's databases, 13 to 10, too).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BENCH_DB = os.environ.get("BENCH_DATABASE", "scriptripper_bench")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PG = os.environ.get("BENCH_PG", "postgresql://127.0.0.1:5432")
TRANSCRIPTS = ROOT.parent / "shared" / "transcripts"
if not TRANSCRIPTS.is_dir():  # a checkout without ../shared: the copies the tests use
    TRANSCRIPTS = ROOT / "tests" / "data" / "transcripts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(emulator_url: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "scriptripper.settings",
        "DATABASE_URL": f"{PG}/{BENCH_DB}",
        "REDIS_URL": BENCH_REDIS,
        "LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
        "RESULT_REUSE_TTL_SECONDS": "0",
        # As deployed: DEBUG off (with it on, Django keeps every SQL statement of a worker in memory).
        "DEBUG": "false",
    })
    if emulator_url:
        env.update({
            "GEMINI_API_KEY": "bench", "OPENAI_API_KEY": "bench", "ANTHROPIC_API_KEY": "bench",
            "OPENAI_BASE_URL": f"{emulator_url}/v1", "ANTHROPIC_BASE_URL": emulator_url,
            "GEMINI_BASE_URL": emulator_url, "GEMINI_API_VERSION": "v1beta",
        })
    env.update(extra)
    return env


def setup_django(emulator_url: str | None = None, **extra: str) -> None:
    """Configure this process for the bench database (created and migrated if needed)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(f'create database "{BENCH_DB}"')
    os.environ.update(base_env(emulator_url, **extra))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def drop_database() -> None:
    """Drop the bench database (a throwaway one, such as the test suite's smoke run's), closing this
    process's connections to it first and ending any other left behind."""
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def redis():
    import redis as redis_lib

    return redis_lib.Redis.from_url(BENCH_REDIS)


def reset_state() -> None:
    """Empty queues, job rows and the spend ledger between cases (the bench database's own).

    The ledger outlives deleted jobs (money spent is history), so without this every run would add
    thousands of entries that GET /api/v1/account, the API case's baseline, sums for the month.
    Emptied by TRUNCATE, not DELETE: deleted rows stay in the tables and their indexes until a vacuum, and
    with autovacuum off or behind, the next case's queries step over every one of them (the account's month
    sum over 150,000 dead ledger rows: 6.8 ms against 2.5 ms), which makes a baseline slower the longer the
    benchmarks have run.
    """
    from django.db import connection

    from accounts.models import SpendEntry
    from jobs.models import Job

    redis().flushdb()
    with connection.cursor() as cursor:
        # CASCADE: the tables that refer to jobs (tasks, webhook deliveries, ...) are emptied with them.
        cursor.execute(f'TRUNCATE "{Job._meta.db_table}", "{SpendEntry._meta.db_table}" CASCADE')


def bench_user(username: str = "bench"):
    """A pro user exempt from throttles and spending limits (staff, no budget cap)."""
    from decimal import Decimal

    from accounts.services import user_upsert

    user, _ = user_upsert(username=username, plan="pro", is_staff=True, monthly_budget=Decimal("1000000"),
                          unlimited=True)
    return user


@contextmanager
def emulator_process(latency: float = 0.0, max_context: int | None = None):
    from emulator.server import EmulatorClient

    port = free_port()
    args = [PYTHON, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port), "--latency", str(latency)]
    if max_context:
        args += ["--max-context", str(max_context)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = EmulatorClient(f"http://127.0.0.1:{port}")
    try:
        client.wait_ready()
        client.configure(max_recorded=0)  # don't hold thousands of bodies in memory
        yield client
    finally:
        stop(proc)


GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4  # as scripts/run.sh runs the API


@contextmanager
def api_server(env: dict[str, str]):
    """gunicorn serving the app as scripts/run.sh does; yields its base URL once it answers."""
    import urllib.request

    port = free_port()
    gunicorn = subprocess.Popen([str(Path(PYTHON).parent / "gunicorn"), "scriptripper.wsgi", "--bind",
                                 f"127.0.0.1:{port}", "--workers", str(GUNICORN_WORKERS), "--threads",
                                 str(GUNICORN_THREADS), "--worker-class", "gthread", "--log-level", "warning"],
                                cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/api/v1/", timeout=2).read()  # the index: cheap, no token
                break
            except Exception:
                time.sleep(0.2)
        yield url
    finally:
        stop(gunicorn)


def _load_worker(args):
    url, paths, method, body, token, seconds, threads = args
    import http.client
    from urllib.parse import urlparse

    parsed = urlparse(url)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine = []
        n = offset
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            n += 1
            t = time.monotonic()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 400:
                    with lock:
                        errors[0] += 1
            except Exception:
                with lock:
                    errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
                continue
            mine.append(time.monotonic() - t)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, errors[0]


def load(url: str, path: str | list[str], method: str, body, token: str, seconds: float, clients: int = 20,
         procs: int = 2) -> dict:
    """`clients` concurrent clients (threads in `procs` processes) sending the request for `seconds`: requests
    a second, latency percentiles (s) and errors. Given several paths, each client goes through them in turn."""
    return _summary(*_load(url, path, method, body, token, seconds, clients, procs), seconds)


def load_interleaved(url: str, measures: dict[str, tuple[str | list[str], str, object]], token: str,
                     seconds: float, rounds: int, clients: int = 20, procs: int = 2) -> dict[str, dict]:
    """load() of each measure (name: (path or paths, method, body)) for `seconds` in all, in `rounds`
    interleaved rounds (A B C, A B C, ...), each measure's latencies pooled over its rounds: a drift of the
    machine, or clients' connections falling unevenly on the server's workers in one round, weighs on every
    measure alike instead of on whichever ran then."""
    pooled: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in measures}
    for _ in range(rounds):
        for name, (path, method, body) in measures.items():
            latencies, errors = _load(url, path, method, body, token, seconds / rounds, clients, procs)
            pooled[name] = (pooled[name][0] + latencies, pooled[name][1] + errors)
    return {name: _summary(latencies, errors, seconds) for name, (latencies, errors) in pooled.items()}


def _load(url: str, path: str | list[str], method: str, body, token: str, seconds: float, clients: int,
          procs: int) -> tuple[list[float], int]:
    paths = [path] if isinstance(path, str) else list(path)
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(_load_worker, [(url, paths, method, body, token, seconds, clients // procs)] * procs)
    return [x for part, _ in parts for x in part], sum(e for _, e in parts)


def _summary(latencies: list[float], errors: int, seconds: float) -> dict:
    latencies = sorted(latencies)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    return {"rps": len(latencies) / seconds, "p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "errors": errors,
            "n": len(latencies)}


def start_workers(count: int, env: dict[str, str], *, burst: bool = False, worker_class: str | None = None,
                  queues: tuple[str, ...] = ("high", "default", "low")) -> list[subprocess.Popen]:
    procs = []
    for _ in range(count):
        args = [PYTHON, "manage.py", "rqworker", *queues]
        if burst:
            args.append("--burst")
        if worker_class:
            args += ["--worker-class", worker_class]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=_log("worker")))
    return procs


def start_pool(count: int, env: dict[str, str], *, burst: bool = True,
               worker_class: str | None = None) -> subprocess.Popen:
    args = [PYTHON, "manage.py", "rqworker-pool", "high", "default", "low", "--num-workers", str(count)]
    if burst:
        args.append("--burst")
    if worker_class:
        args += ["--worker-class", worker_class]
    # A session of its own: the pool's worker processes must stop with it (see stop()).
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=_log("pool"),
                            start_new_session=True)


def _log(name: str):
    # A file, not a pipe: a pipe nobody reads fills up and blocks a chatty worker.
    logs = ROOT / ".data" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    return open(logs / f"{name}-{time.time_ns()}.log", "wb")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM (then SIGKILL) the process, and its whole session when it leads one: a
    worker pool's children outlive a signal sent to the pool's manager alone, and would
    go on taking the next case's jobs."""
    leader = proc.poll() is None and os.getsid(proc.pid) == proc.pid

    def signal_all(sig: int) -> None:
        try:
            if leader:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    if proc.poll() is None:
        signal_all(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_all(signal.SIGKILL)
            proc.wait()
    if leader:
        # The manager may exit before its children: give them the same end.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_workers(count: int, timeout: float = 60) -> None:
    """Until `count` RQ workers are registered in the bench Redis."""
    from rq import Worker

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if len(Worker.all(connection=redis())) >= count:
            return
        time.sleep(0.1)
    raise TimeoutError("workers did not register")


def suspend_workers(timeout: float = 30) -> None:
    """`rq suspend`, then wait until every registered worker (ScriptRipperWorkers: RQ's own reads the flag only
    when its dequeue returns) says it is suspended: a worker reads the flag between takes (ours at most once a
    second while taking), so jobs queued before it has read it would be taken at once, before `rq resume`, and
    the case would time a run that had already begun."""
    from rq import Worker
    from rq.suspension import suspend

    suspend(redis())
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        workers = Worker.all(connection=redis())
        if workers and all(worker.get_state() == "suspended" for worker in workers):
            return
        time.sleep(0.05)
    raise TimeoutError("workers did not report themselves suspended")


def wait_final(job_ids, timeout: float = 600, poll: float = 0.05) -> float:
    """Seconds until every job is final (polls PostgreSQL every `poll` seconds)."""
    from jobs.models import Job

    ids = [str(j) for j in job_ids]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        open_count = Job.objects.filter(id__in=ids).exclude(status__in=Job.FINAL_STATUSES).count()
        if open_count == 0:
            return time.monotonic() - started
        time.sleep(poll)
    raise TimeoutError(f"jobs not final after {timeout} s")


def submit_jobs(user, count: int, *, text: str, tasks: dict[str, str] | None = None, queue: str | None = None,
                provider: str = "openai", model: str = "gpt-4o-mini") -> list:
    """Create jobs through the same service the API uses (enqueued on commit)."""
    from analysis.engine.planning import TaskSpec
    from jobs.services import JobRequest, job_create

    tasks = tasks or {"summary": "Provide a brief summary"}
    request_kwargs = {}
    if "reuse_results" in JobRequest.__dataclass_fields__:
        request_kwargs["reuse_results"] = False
    jobs = []
    for _ in range(count):
        jobs.append(job_create(owner=user, request=JobRequest(
            provider=provider, model=model, transcript=text, queue=queue,
            tasks=[TaskSpec(name=n, prompt=p) for n, p in tasks.items()], **request_kwargs)).id)
    return jobs


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib_tree(pid: int) -> int:
    """Proportional set size of a process and all its descendants (shared pages split between them)."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # exited meanwhile
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sample_text(words: int = 300) -> str:
    text = (TRANSCRIPTS / "TS3010a.txt").read_text(encoding="utf-8") if TRANSCRIPTS.is_dir() else (
        ROOT / "docs" / "sample-meeting.txt").read_text(encoding="utf-8")
    return " ".join(text.split(" ")[:words])


def provider_rows(figures: dict, case: str, bound: float, row) -> dict:
    """figures["ok"] (every provider met the bound) and figures["rows"], the rows of bench/run.py's table:
    one a provider of figures["providers"], whose measure, value, baseline, ratio and notes `row(name,
    its figures)` gives. Returns the figures."""
    figures["ok"] = all(p["ok"] for p in figures["providers"].values())
    figures["rows"] = [{"case": case, "bound": f"≤ {bound}", "ok": p["ok"], "unit": "s", **row(name, p)}
                       for name, p in figures["providers"].items()]
    return figures


def module_main(run, doc: str, small_help: str) -> int:
    """The command line of a benchmark module (bench/fanout.py, bench/long_transcript.py, ...):
    run it, print its figures as JSON, exit non-zero when a bound was missed."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help=small_help)
    figures = run(small=parser.parse_args().small)
    print(json.dumps(figures, indent=2))
    return 0 if figures["ok"] else 1
