#!/usr/bin/env bash
# Sets up and runs ScriptRipper on this machine: venv, requirements, PostgreSQL and Redis
# (started privately under .data/ if none answers), migrations, a demo user and its token,
# then the API on http://localhost:8000 and one worker. Ctrl-C stops both.
# With no provider key configured, a local emulator answers instead (synthetic output).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv requirements/base.txt
ensure_postgres
ensure_redis
# The database DATABASE_URL names when it is set here (settings.py's default otherwise).
DB_NAME="${DATABASE_URL:+${DATABASE_URL##*/}}"
ensure_database "${DB_NAME%%\?*}"
export DJANGO_SETTINGS_MODULE=scriptripper.settings
PY="$VENV/bin/python"
PORT="${PORT:-8000}"
LOGS="$DATA/logs"; mkdir -p "$LOGS"

# What a second shell needs to reach this demo (the emulator's settings, the token): `source .data/demo.env`.
DEMO_ENV="$DATA/demo.env"
pids=()
cleanup() { rm -f "$DEMO_ENV"; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# A shell that sourced an earlier demo.env carries the emulator's settings: they are not a real key.
if [ "${SCRIPTRIPPER_OFFLINE_DEMO:-}" = 1 ]; then
  unset GEMINI_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL GEMINI_BASE_URL GEMINI_API_VERSION
fi
configured=$("$PY" -c 'import django; django.setup(); from analysis.clients import provider_configured as p; print(int(any(p(n) for n in ("gemini", "openai", "anthropic"))))')
if [ "$configured" = 0 ]; then
  EMULATOR_PORT="${EMULATOR_PORT:-8765}"
  say "no provider key set: starting the local provider emulator on :$EMULATOR_PORT (SYNTHETIC answers, offline demo)"
  "$PY" -m emulator --host 127.0.0.1 --port "$EMULATOR_PORT" >"$LOGS/emulator.log" 2>&1 &
  pids+=($!)
  export GEMINI_API_KEY=offline-demo OPENAI_API_KEY=offline-demo ANTHROPIC_API_KEY=offline-demo
  export OPENAI_BASE_URL="http://127.0.0.1:$EMULATOR_PORT/v1" ANTHROPIC_BASE_URL="http://127.0.0.1:$EMULATOR_PORT"
  export GEMINI_BASE_URL="http://127.0.0.1:$EMULATOR_PORT" GEMINI_API_VERSION=v1beta
fi

say "applying migrations"
"$PY" manage.py migrate --noinput >/dev/null
# --login-password: a generated admin password for `demo`, the first time only. It stays in this
# variable and goes to the terminal, never to a file under .data/logs.
CREATED=$("$PY" manage.py createtoken demo --plan pro --staff --name "run.sh" --login-password)
TOKEN=$(printf '%s\n' "$CREATED" | tail -n1)
LOGIN=$(printf '%s\n' "$CREATED" | grep '^Admin login:' || true)

write_demo_env "$DEMO_ENV" "$PORT" "$TOKEN" "$configured"

say "starting one worker (logs: .data/logs/worker.log)"
"$PY" manage.py rqworker high default low >"$LOGS/worker.log" 2>&1 &
pids+=($!)
say "starting the API on http://localhost:$PORT (logs: .data/logs/api.log)"
"$VENV/bin/gunicorn" scriptripper.wsgi --bind "0.0.0.0:$PORT" --workers "${WEB_CONCURRENCY:-2}" --threads 4 \
  --access-logfile - >"$LOGS/api.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fs "http://localhost:$PORT/api/schema/" >/dev/null 2>&1 && break; sleep 0.2; done

cat <<MSG

ScriptRipper is running.  API: http://localhost:$PORT/api/v1/   Swagger UI: http://localhost:$PORT/api/docs/
Admin (jobs, charts, users): http://localhost:$PORT/admin/
  $LOGIN
Demo user 'demo' (pro, staff). Its token:

  export TOKEN=$TOKEN

From another shell (the CLI, scripts/demo.py, the README's snippets), first:

  source .data/demo.env

Try it (paste as is):

  curl -s -X POST http://localhost:$PORT/api/v1/jobs/analyze -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\
    -d '{"transcript": "Alice: We ship on Friday. Bob: I will write the release notes by Thursday.", "provider": "gemini", "model": "gemini-2.5-flash",
         "tasks": {"summary": "Provide a brief summary", "key_points": "Extract key points"}}'

  curl -s http://localhost:$PORT/api/v1/jobs/<job_id> -H "Authorization: Bearer $TOKEN"

Or the whole round trip on a sample meeting:  TOKEN=$TOKEN scripts/demo.py   (Ctrl-C here stops API and worker)
MSG
[ "$configured" = 0 ] && echo "NOTE: offline demo mode: answers come from the local emulator and are SYNTHETIC, not a real model."
wait -n "${pids[@]}"
