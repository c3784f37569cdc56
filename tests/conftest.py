"""Shared fixtures: named users, API clients, the provider emulator, Redis, workers.

Everything runs on the real PostgreSQL (pytest-django's test database) and the
real Redis (the database of REDIS_URL, 13 by default: see tests/settings.py), and
provider calls go over real HTTP through the official SDKs to the local emulator.

The suite flushes its Redis database around every test, so it only runs on a database
that is its own: empty, or marked as a test database by an earlier run, and not in
use by another live run (`claim_test_redis`). Everything else of the run (the fuzz
run's server, the benchmark smoke run) uses that same database, never another one.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import api_token_create, user_upsert
from analysis.clients import reset_provider_clients
from emulator.server import Emulator
from scriptripper.redis_clients import CONNECTION_KEYS, configured_redis_connection, redis_location
from tests.waits import wait_for  # noqa: F401  (the tests import it from here)

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT.parent / "shared" / "transcripts"
if not TRANSCRIPTS.is_dir():  # a checkout without ../shared: the copies under tests/data
    TRANSCRIPTS = ROOT / "tests" / "data" / "transcripts"


def transcript(name: str) -> str:
    return (TRANSCRIPTS / name).read_text(encoding="utf-8")


def pytest_addoption(parser):
    parser.addoption("--pgbouncer", action="store_true",
                     help="run the database through a private PgBouncer in transaction mode, with the settings of "
                          "DATABASE_POOL_MODE=transaction (scripts/test.sh reruns the tests marked `pgbouncer` so)")


def pytest_configure(config):
    if config.getoption("pgbouncer") and settings.DATABASE_POOL_MODE != "transaction":
        pytest.exit("--pgbouncer: the settings were loaded without DATABASE_POOL_MODE=transaction (tests/settings.py "
                    "reads the option from the command line; run `python -m pytest --pgbouncer ...`)", returncode=4)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """With DATABASE_POOL_MODE session or transaction (`pytest --pgbouncer`): the test database is created and
    dropped on PostgreSQL itself (a pooler's server connections would block the DROP), and everything in between,
    this process and every process it starts (worker_env), goes through a private PgBouncer in that pool mode,
    whose wildcard entry routes the test database to the same server."""
    if settings.DATABASE_POOL_MODE == "none":
        yield
        return
    from django.db import connection, connections

    from tests.servers import PgBouncer, pgbouncer_missing

    if pgbouncer_missing():
        pytest.exit(f"DATABASE_POOL_MODE={settings.DATABASE_POOL_MODE}: {pgbouncer_missing()}", returncode=4)
    database = settings.DATABASES["default"]
    direct = database["HOST"], database["PORT"]
    bouncer = PgBouncer(pg_host=direct[0] or "127.0.0.1", pg_port=int(direct[1] or 5432),
                        pool_mode=settings.DATABASE_POOL_MODE,
                        users=(database.get("USER") or getpass.getuser(),)).start()
    with django_db_blocker.unblock():
        connections.close_all()
        database["HOST"], database["PORT"] = "127.0.0.1", bouncer.port
        # PgBouncer's entry gives the server connections the time zone Django wants, so Django never SETs it.
        connection.ensure_connection()
        assert connection.connection.info.parameter_status("TimeZone") == "UTC"
    try:
        yield
    finally:
        with django_db_blocker.unblock():
            connections.close_all()
        database["HOST"], database["PORT"] = direct
        bouncer.close()


@pytest.fixture(autouse=True)
def no_session_state():
    """Through a transaction pooler, every statement this process sends is checked for session state
    (tests/pooling.py): it would land on another client's server connection."""
    if settings.DATABASE_POOL_MODE != "transaction":
        yield
        return
    from django.db import connection

    from tests.pooling import session_state

    def refuse(execute, sql, params, many, context):
        what = session_state(str(sql))
        assert what is None, f"{what} through a transaction pooler: {sql}"
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse):
        yield


@pytest.fixture(scope="session")
def emulator():
    emu = Emulator(host="127.0.0.1", port=0).start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def provider_endpoints(emulator, settings):
    """Point every SDK at the emulator, as OPENAI_BASE_URL & co. would in production."""
    emulator.reset()
    settings.OPENAI_BASE_URL = emulator.openai_base_url
    settings.ANTHROPIC_BASE_URL = emulator.url
    settings.GEMINI_BASE_URL = emulator.url
    settings.GEMINI_API_VERSION = "v1beta"
    reset_provider_clients()
    yield
    reset_provider_clients()
    # A call a test abandoned (a task moved to a fallback, a canceled run) may still be open at the emulator: let it
    # end here, or the next test on this process would count it among its own requests.
    deadline = time.monotonic() + 30
    while emulator.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)


# Marks a Redis database as the test suite's (kept across runs) ...
TEST_DATABASE_MARK = "sr-test:database"
# ... and the live run using it (expires unless renewed, so a killed run does not lock it forever).
TEST_RUN_LEASE = "sr-test:run"
TEST_RUN_LEASE_SECONDS = 1800


def _this_run() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.environ.get('SR_TEST_ID', '')}"


def claim_test_redis(conn) -> None:
    """Make sure the run's Redis database is the suite's to flush, and mark it as in use by this run.

    Refuses (ending the run before any test) a database that holds keys no test run created (the
    REDIS_URL of the real queues, say), or one that another live run is using.
    """
    me = _this_run()
    holder = conn.get(TEST_RUN_LEASE)
    where = redis_location(configured_redis_connection())
    if holder is not None and holder.decode() != me and not _lease_is_stale(holder.decode()):
        pytest.exit(f"Redis {where} is in use by another test run ({holder.decode()}); give each "
                    "run its own REDIS_URL database (REDIS_DB through Sentinels) and SR_TEST_ID", returncode=3)
    if not conn.exists(TEST_DATABASE_MARK) and conn.dbsize():
        pytest.exit(f"Redis {where} holds {conn.dbsize()} keys that no test run created, and the "
                    "suite flushes its Redis database around every test: point REDIS_URL (REDIS_DB through "
                    "Sentinels) at an empty database (if this one is a leftover of yours: redis-cli -u REDIS_URL "
                    "flushdb)", returncode=3)
    mark_test_redis(conn)


def _lease_is_stale(holder: str) -> bool:
    """A lease left by a run of this machine whose process is gone (killed, crashed) holds nothing."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's run: only its lease's expiry says it is over
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def mark_test_redis(conn) -> None:
    conn.set(TEST_DATABASE_MARK, "scriptripper test suite")
    conn.set(TEST_RUN_LEASE, _this_run(), ex=TEST_RUN_LEASE_SECONDS)


@pytest.fixture(scope="session")
def suite_redis():
    conn = django_rq.get_connection("default")
    claim_test_redis(conn)
    yield conn
    if (conn.get(TEST_RUN_LEASE) or b"").decode() == _this_run():
        conn.delete(TEST_RUN_LEASE)


@pytest.fixture(autouse=True)
def clean_redis(suite_redis):
    # FLUSHDB, never FLUSHALL: the other databases of the server are someone else's.
    suite_redis.flushdb()
    mark_test_redis(suite_redis)
    yield suite_redis
    suite_redis.flushdb()
    mark_test_redis(suite_redis)


@pytest.fixture
def operators_group(db):
    """The "operators" group as accounts' migration 0004 makes it (the same function, run again).

    Data from a migration is there for the first test only: the flush after a transactional
    test empties every table, and Django restores content types and permissions, not groups.
    """
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    from accounts.services import OPERATORS_GROUP

    if not Group.objects.filter(name=OPERATORS_GROUP).exists():
        importlib.import_module("accounts.migrations.0004_operators_group").create_operators(apps, None)
    return Group.objects.get(name=OPERATORS_GROUP)


@pytest.fixture
def builtin_profiles(_django_db_helper):
    """The built-in profiles as the migrations leave them (a transactional test's flush removes them)."""
    import importlib

    from django.apps import apps

    from analysis.models import AnalysisProfile

    if not AnalysisProfile.objects.filter(owner=None).exists():
        importlib.import_module("analysis.migrations.0002_builtin_profiles").create_builtins(apps, None)
        importlib.import_module("analysis.migrations.0004_structured_builtin_profiles").add_schemas(apps, None)


# The upper bound of a wait on another process: a worker starting and running its jobs, a command, a server
# coming up. It only guards against a hang (a passing test goes on as soon as its condition holds), so it
# measures nothing and is generous: at load 8 on a 2-core machine a worker's start-up alone took 28 s.
PROCESS_WAIT = 300.0


def http_status(url: str) -> int:
    """The HTTP status a GET of `url` answers (an error status too); OSError while nothing listens there."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_answering(proc: subprocess.Popen, request: Callable[[], object], what: str, log: Path | None = None):
    """request()'s first true value once the server process `proc` answers it (an OSError, such as
    a refused connection, means it is not listening yet); fails at once when `proc` exits first."""
    def attempt():
        assert proc.poll() is None, f"{what} exited" + (f":\n{log.read_text()[-3000:]}" if log else "")
        try:
            return request()
        except OSError:
            return None

    return wait_for(attempt, PROCESS_WAIT, f"{what} to answer", interval=0.2)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """The response is the one error shape with this status (and code, and field when given); its error."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert field in error["fields"], error
    return error


def make_user(username: str, **kwargs):
    user, _ = user_upsert(username=username, **kwargs)
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user).secret}")
    return client


@pytest.fixture
def alice(db):
    return make_user("alice", plan="free")


@pytest.fixture
def bob(db):
    return make_user("bob", plan="free")


@pytest.fixture
def alice_client(alice) -> APIClient:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> APIClient:
    return client_for(bob)


def work_burst() -> None:
    """Run every queued job with the project's worker (jobs.worker.ScriptRipperWorker, many jobs
    in flight) on the real Redis, in this process, until the queues are empty.

    In this process so the test's database settings apply; `rqworker` subprocesses are
    exercised by the fault tests.
    """
    from jobs.worker import ScriptRipperWorker

    queues = [django_rq.get_queue(name) for name in settings.RQ_QUEUE_NAMES]
    ScriptRipperWorker(queues, connection=queues[0].connection).work(burst=True, with_scheduler=False)


def wait_enqueued_job(count: int = 1):
    """The latest job, once there are `count` jobs and it is on its queue: what another process (a
    command, a script) submitted. The enqueue follows the commit, so a worker run as soon as the row
    shows could find nothing to run."""
    from jobs.models import Job

    def enqueued():
        if Job.objects.count() < count:
            return None
        job = Job.objects.first()  # the latest
        return job if str(job.id) in django_rq.get_queue(job.queue).job_ids else None

    return wait_for(enqueued, PROCESS_WAIT, "a job submitted and enqueued by the other process", interval=0.05)


def queues_at(url: str) -> dict:
    """RQ_QUEUES on the Redis at `url` alone (as REDIS_URL without Sentinels makes them)."""
    return {name: {**{key: value for key, value in queue.items() if key not in CONNECTION_KEYS}, "URL": url}
            for name, queue in settings.RQ_QUEUES.items()}


def use_redis_url(settings, url: str) -> None:
    """This process's Redis on `url` alone, for a test that stops, replaces or cuts off Redis, whichever way the
    run reaches its own (REDIS_URL, or REDIS_SENTINELS: a run through Sentinels too)."""
    settings.REDIS_URL, settings.REDIS_SENTINELS, settings.RQ_QUEUES = url, [], queues_at(url)


def worker_env(emulator, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess: the test database, test Redis, the emulator. Given another REDIS_URL,
    the process uses that Redis alone, whatever Sentinels the run goes through."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    if extra.get("REDIS_URL", settings.REDIS_URL) != settings.REDIS_URL:
        for name in settings.REDIS_SENTINEL_VARIABLES:
            env.pop(name, None)
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgresql://{db.get('USER') or 'root'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "ANTHROPIC_BASE_URL": emulator.url,
        "GEMINI_BASE_URL": emulator.url,
        "GEMINI_API_VERSION": "v1beta",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def run_manage(*args: str, env: dict[str, str] | None = None,
               timeout: float = PROCESS_WAIT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
