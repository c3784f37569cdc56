"""schemathesis (the OpenAPI fuzzer) against /api/schema/ of a live server: zero failures.

A real gunicorn serves the app against the test database and the run's own Redis
database (REDIS_URL, which the suite owns and flushes around every test: no other
database is touched); no worker runs the fuzzer's jobs. The run is bounded by
FUZZ_MAX_SECONDS (default 100; `FUZZ_MAX_SECONDS=600 scripts/test.sh
tests/security/test_schemathesis.py` for a longer one).

Checks: not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance.

A second pass runs as a staff user (the queues, built-in profiles). Revoking tokens
is fuzzed in a third, separate pass with a token of its own: the
stateful phase takes ids from GET /api/v1/tokens, which lists the fuzzer's own
token, and revoking that early would leave the rest of the run answering 401.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from rq.job import Job as RQJob

from accounts.services import api_token_create
from tests.conftest import ROOT, http_status, make_user, wait_answering, worker_env

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FUZZ_SECONDS = int(os.environ.get("FUZZ_MAX_SECONDS", "100"))

def fuzz_redis_url() -> str:
    """The run's own Redis database: derived from nothing else, so a run with its own REDIS_URL touches only it."""
    return settings.REDIS_URL


CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
REVOKE = "v1_tokens_destroy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_server(emulator):
    port = free_port()
    redis_url = fuzz_redis_url()
    env = worker_env(emulator, REDIS_URL=redis_url, DEBUG="false")
    log = open(ROOT / ".data" / "schemathesis-gunicorn.log", "w") if (ROOT / ".data").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "scriptripper.wsgi:application", "--bind",
                             f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(proc, lambda: http_status(f"{url}/api/schema/") == 200, "gunicorn")
        yield url
        # The server's jobs go to the run's own Redis database: one submitted now (the fuzzer may
        # have canceled or deleted its own) must be there.
        token = api_token_create(user=make_user("fuzz-check", unlimited=True)).secret
        request = urllib.request.Request(f"{url}/api/v1/jobs/analyze", method="POST", data=json.dumps({
            "transcript": "Alice: hi", "provider": "openai", "model": "gpt-4o-mini", "tasks": {"summary": "Sum up"},
        }).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            job_id = json.load(response)["job_id"]
        assert django_rq.get_connection("default").exists(RQJob.key_for(job_id))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        # Nothing to flush here: clean_redis empties the run's database after the test.


def seed_args() -> list[str]:
    # CI fuzzes with a fixed seed so a run can be replayed; FUZZ_SEED=random explores new data
    # (by hand, with a longer FUZZ_MAX_SECONDS), or FUZZ_SEED=<n> replays a reported run.
    seed = os.environ.get("FUZZ_SEED", "20261130")
    return [] if seed == "random" else ["--seed", seed]


def schemathesis(url: str, token: str, *args: str, seconds: int) -> subprocess.CompletedProcess:
    st = Path(sys.executable).parent / "st"
    return subprocess.run(
        [str(st), "run", f"{url}/api/schema/", "--header", f"Authorization: Bearer {token}", "--checks", CHECKS,
         "--workers", "2", "--max-time", str(seconds), "--no-color", "--request-timeout", "30", *seed_args(), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})


def test_schemathesis_finds_no_failures(gunicorn_server, db):
    # An ordinary free user (the plan's budget and rates apply, so 402 and 429 are reachable).
    fuzzer = make_user("fuzzer", plan="free")
    main = schemathesis(gunicorn_server, api_token_create(user=fuzzer).secret, "--exclude-operation-id", REVOKE,
                        seconds=max(10, FUZZ_SECONDS - 30))
    assert main.returncode == 0, main.stdout[-15000:] + main.stderr[-3000:]
    # Staff see more (the queues, changes to built-in profiles): their answers must match the schema too.
    staff = make_user("fuzzer-staff", plan="pro", is_staff=True)
    as_staff = schemathesis(gunicorn_server, api_token_create(user=staff).secret, "--exclude-operation-id", REVOKE,
                            seconds=15)
    assert as_staff.returncode == 0, as_staff.stdout[-15000:] + as_staff.stderr[-3000:]
    revoke = schemathesis(gunicorn_server, api_token_create(user=fuzzer).secret, "--include-operation-id", REVOKE,
                          seconds=10)
    assert revoke.returncode == 0, revoke.stdout[-15000:] + revoke.stderr[-3000:]
    summary = [line for line in main.stdout.splitlines() if "generated" in line]
    print("\n".join(summary))
