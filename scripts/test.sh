#!/usr/bin/env bash
# Runs the test suite on a fresh machine: venv, requirements, PostgreSQL and Redis, pytest.
# Extra arguments go to pytest instead (e.g. scripts/test.sh tests/jobs -x: one process).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv requirements/dev.txt
ensure_postgres
ensure_redis
ensure_database scriptripper >/dev/null
export DATABASE_URL="${TEST_DATABASE_URL:-postgresql://$PG_HOST:$PG_PORT/scriptripper}"
if [ $# -eq 0 ]; then
  # The whole suite: four pytest-xdist workers (each its own test database and Redis database, see
  # tests/settings.py). Most of its time is spent waiting on worker and server subprocesses, so four
  # share two cores well; `worksteal` keeps the long tests from queueing behind each other.
  "$VENV/bin/python" -m pytest -n "${TEST_WORKERS:-4}" --dist worksteal
  # Then the job path again (the tests marked `pgbouncer`: the worker's lifecycle, durability, the job API)
  # through a private PgBouncer in transaction mode, with the settings of DATABASE_POOL_MODE=transaction.
  if ! command -v pgbouncer >/dev/null 2>&1; then
    echo "skipped: the job-path tests through PgBouncer (pgbouncer is not installed: apt-get install pgbouncer)" >&2
    exit 0
  fi
  set -- -n "${TEST_WORKERS:-4}" --dist worksteal --pgbouncer -m pgbouncer
fi
exec "$VENV/bin/python" -m pytest "$@"
