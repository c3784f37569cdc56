#!/usr/bin/env bash
# Sets up and runs ScriptRipper on this machine: venv, requirements, PostgreSQL and Redis
# (started privately under .data/ if none answers), migrations, a demo user and its token,
# then the API on http://localhost:8000 and one worker. Ctrl-C stops both.
# With no provider key configured, a local emulator answers instead (synthetic output).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv requirements/base.txt
export DJANGO_SETTINGS_MODULE=scriptripper.settings
PY="$VENV/bin/python"
PORT="${PORT:-8000}"
EMULATOR_PORT="${EMULATOR_PORT:-8765}"
LOGS="$DATA/logs"; mkdir -p "$LOGS"

# A shell that sourced an earlier demo.env carries the emulator's settings: they are not a real key.
if [ "${SCRIPTRIPPER_OFFLINE_DEMO:-}" = 1 ]; then
  unset GEMINI_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL GEMINI_BASE_URL GEMINI_API_VERSION
fi
app_settings  # PROVIDER_CONFIGURED; REDIS_URL and DATABASE_URL exported
configured="$PROVIDER_CONFIGURED"
# Before anything starts or is printed: the ports this run binds.
ensure_port_free "$PORT" PORT "the API"
[ "$configured" = 0 ] && ensure_port_free "$EMULATOR_PORT" EMULATOR_PORT "the offline demo's provider emulator"

ensure_postgres
ensure_redis
DB_NAME="${DATABASE_URL##*/}"
ensure_database "${DB_NAME%%\?*}"

# What a second shell needs to reach this demo (the emulator's settings, the token): `source .data/demo.env`.
DEMO_ENV="$DATA/demo.env"
pids=()
cleanup() { rm -f "$DEMO_ENV"; for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$configured" = 0 ]; then
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
# variable and goes to the terminal, never to a file under .data/logs. --replace: this start's token
# replaces the one the previous start printed (one "run.sh" token, not one more per start).
CREATED=$("$PY" manage.py createtoken demo --plan pro --staff --name "run.sh" --replace --login-password)
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
api_pid=$!
# Ready when our gunicorn answers (the port was free, so no other server does); it ending first is an error.
ready=0
for _ in $(seq 1 150); do
  kill -0 "$api_pid" 2>/dev/null || break
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$PORT/healthz" || true)" != 000 ] && { ready=1; break; }
  sleep 0.2
done
[ "$ready" = 1 ] || die "the API did not start on port $PORT; the end of .data/logs/api.log:
$(tail -n 20 "$LOGS/api.log")"

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
status=0
wait -n "${pids[@]}" || status=$?
die "a process of the demo ended (exit status $status): see .data/logs/ (api.log, worker.log, emulator.log)"
