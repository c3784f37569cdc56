#!/usr/bin/env bash
# Runs the test suite on a fresh machine: venv, requirements, PostgreSQL and Redis, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/jobs -x).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv requirements/dev.txt
ensure_postgres
ensure_redis
ensure_database scriptripper >/dev/null
export DATABASE_URL="${TEST_DATABASE_URL:-postgresql://$PG_HOST:$PG_PORT/scriptripper}"
exec "$VENV/bin/python" -m pytest "$@"
