"""Test settings: the project's one settings module, with test defaults in the environment.

Only environment defaults are set here (a separate Redis database so tests never
touch the real queues, dummy provider keys for the local emulator); the settings
themselves are scriptripper/settings.py, unchanged.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
# Under pytest-xdist (`scripts/test.sh -n 4`) each worker process is a test run of its own: the suite flushes
# its Redis database around every test, so worker gwN takes the database N below REDIS_URL's (13, 12, 11, 10 by
# default) and its own SR_TEST_ID (pytest-django already gives each worker its own PostgreSQL test database).
# Done once per worker: the processes a test starts inherit the result (and PYTEST_XDIST_WORKER) in their
# environment and must not shift it again.
# Through Sentinels (REDIS_SENTINELS set), the database number is REDIS_DB's, or REDIS_URL's when REDIS_DB is unset.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker.startswith("gw") and os.environ.get("SR_TEST_XDIST_WORKER") != _xdist_worker:
    _base, _, _number = os.environ["REDIS_URL"].rpartition("/")
    # Modulo the 16 databases of a default Redis; a database that is not the suite's stops the run (conftest).
    if os.environ.get("REDIS_SENTINELS"):
        os.environ["REDIS_DB"] = str((int(os.environ.get("REDIS_DB") or _number or 0) - int(_xdist_worker[2:])) % 16)
    else:
        os.environ["REDIS_URL"] = f"{_base}/{(int(_number or 0) - int(_xdist_worker[2:])) % 16}"
    os.environ["SR_TEST_ID"] = f"{os.environ.get('SR_TEST_ID', '')}_{_xdist_worker}"
    os.environ["SR_TEST_XDIST_WORKER"] = _xdist_worker
os.environ.setdefault("DATABASE_URL", "postgresql://root@127.0.0.1:5432/scriptripper")
# `pytest --pgbouncer`: the run goes through a private PgBouncer in transaction mode (tests/conftest.py starts it),
# with the settings of that mode. Read here, where the settings are made: pytest-django loads them before any
# conftest is imported. The processes the run starts (xdist's workers, rqworkers) inherit the variable.
if "--pgbouncer" in sys.argv:
    os.environ["DATABASE_POOL_MODE"] = "transaction"
for key in ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
    os.environ.setdefault(key, f"test-{key.lower()}")
# Fast retries in tests: the retry loop is the same, its waits are shorter.
os.environ.setdefault("PROVIDER_RETRY_BASE_DELAY", "0.05")
os.environ.setdefault("PROVIDER_RETRY_MAX_DELAY", "0.5")
# A provider failing with 5xx/429/timeouts is retried until this time budget (not a count of tries): a short
# budget keeps the tests that make it fail for good short.
os.environ.setdefault("PROVIDER_RETRY_MAX_TOTAL", "8")
# A circuit opened by one test's failing provider stays open a second, not the default half-minute: within the short
# budget above, a later job on the same model finds its probe due (tests of the circuit set their own).
os.environ.setdefault("CIRCUIT_COOLDOWN_SECONDS", "1")
os.environ.setdefault("CIRCUIT_COOLDOWN_MAX_SECONDS", "2")
os.environ.setdefault("JOB_HEARTBEAT_SECONDS", "0.5")
# Throttles out of the way of tests that submit many jobs; tests/accounts/test_throttling.py sets its own rates.
for key in ("FREE_SUBMIT_RATE", "PRO_SUBMIT_RATE", "FREE_API_RATE", "PRO_API_RATE"):
    os.environ.setdefault(key, "10000/min")

from scriptripper.settings import *  # noqa: E402,F401,F403
from scriptripper.settings import DATABASES  # noqa: E402

# SR_TEST_ID lets several test runs share one PostgreSQL (each its own test database);
# give each its own REDIS_URL database number too.
DATABASES["default"]["TEST"] = {"NAME": f"test_scriptripper{os.environ.get('SR_TEST_ID', '')}"}
