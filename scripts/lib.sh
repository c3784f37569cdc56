# Shared by scripts/run.sh, scripts/test.sh and .ci/run: find Python, build the
# virtual environment, make sure PostgreSQL and Redis answer.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
DATA="$ROOT/.data"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
REDIS_PORT="${REDIS_PORT:-6379}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

find_python() {
  # A 3.13 or 3.12 that really runs (pyenv shims exist but may refuse to run).
  local candidates=(python3.13 python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    local root; root="$(pyenv root)"
    candidates+=("$root"/versions/3.13*/bin/python3 "$root"/versions/3.12*/bin/python3)
  fi
  candidates+=(/usr/local/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.12 /usr/bin/python3.12 python3)
  local py
  for py in "${candidates[@]}"; do
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 13), (3, 12)) else 1)' >/dev/null 2>&1; then
      command -v "$py" 2>/dev/null || echo "$py"
      return 0
    fi
  done
  return 1
}

ensure_venv() {
  local requirements="$1"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 13), (3, 12)) else 1)' 2>/dev/null; then
    local py; py="$(find_python)" || die "Python 3.13 or 3.12 is required (install it with pyenv or your package manager)"
    say "creating .venv with $py"
    rm -rf "$VENV"
    "$py" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(cat "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)-$(basename "$requirements")"
  if [ ! -f "$stamp" ]; then
    say "installing $requirements"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$ROOT/$requirements"
    touch "$stamp"
  fi
}

pg_answers() { "$VENV/bin/python" - "$PG_HOST" "$PG_PORT" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), dbname="postgres", connect_timeout=3).close()
PY
}

redis_answers() { "$VENV/bin/python" -c "import redis,sys; redis.Redis(host='$REDIS_HOST', port=$REDIS_PORT, socket_timeout=3).ping()" >/dev/null 2>&1; }

ensure_postgres() {
  pg_answers && return 0
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    say "starting the system PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_answers && return 0; sleep 1; done
  fi
  local bindir; bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    die "PostgreSQL does not answer on $PG_HOST:$PG_PORT and no server is installed. Install it with:
    sudo apt-get install -y postgresql redis-server"
  fi
  say "starting a private PostgreSQL under .data/postgres"
  mkdir -p "$DATA"
  local run_as=()
  [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user"; chown -R postgres "$DATA"; run_as=(runuser -u postgres --); }
  if [ ! -f "$DATA/postgres/PG_VERSION" ]; then
    "${run_as[@]}" "$bindir/initdb" -D "$DATA/postgres" -U "$(id -un)" --auth=trust >/dev/null
  fi
  "${run_as[@]}" "$bindir/pg_ctl" -D "$DATA/postgres" -l "$DATA/postgres.log" -o "-p $PG_PORT -k /tmp -h $PG_HOST" start >/dev/null
  for _ in $(seq 1 30); do pg_answers && return 0; sleep 1; done
  die "PostgreSQL did not start (see .data/postgres.log)"
}

ensure_redis() {
  redis_answers && return 0
  command -v redis-server >/dev/null 2>&1 || die "Redis does not answer on $REDIS_HOST:$REDIS_PORT and redis-server is not installed. Install it with:
    sudo apt-get install -y redis-server"
  say "starting Redis on $REDIS_HOST:$REDIS_PORT"
  mkdir -p "$DATA"
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --dir "$DATA" \
    --logfile "$DATA/redis.log" >/dev/null
  for _ in $(seq 1 30); do redis_answers && return 0; sleep 0.5; done
  die "Redis did not start (see .data/redis.log)"
}

ensure_database() {
  local name="${1:-scriptripper}"
  "$VENV/bin/python" - "$PG_HOST" "$PG_PORT" "$name" <<'PY'
import sys, psycopg
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with psycopg.connect(host=host, port=port, dbname="postgres", autocommit=True) as conn:
    if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
        conn.execute(f'create database "{name}"')
        print(f"created database {name}")
PY
}

# app_settings: what the app will use, read through its own settings (the environment, then .env, then its
# defaults): PROVIDER_CONFIGURED (1 when a provider key is set), and REDIS_URL and DATABASE_URL, exported so
# that every process started here, and every shell that sources .data/demo.env, uses the same ones.
app_settings() {
  local out
  out=$(cd "$ROOT" && DJANGO_SETTINGS_MODULE=scriptripper.settings "$VENV/bin/python" -c '
import os
import django
django.setup()  # reads .env into the environment
from django.conf import settings
from analysis.clients import provider_configured
print(int(any(provider_configured(name) for name in ("gemini", "openai", "anthropic"))))
print(settings.REDIS_URL)
print(os.environ.get("DATABASE_URL") or settings.DEFAULT_DATABASE_URL)') || die "the settings do not load (see the error above)"
  { read -r PROVIDER_CONFIGURED; read -r REDIS_URL; read -r DATABASE_URL; } <<<"$out"
  export REDIS_URL DATABASE_URL
}

# ensure_port_free PORT VARIABLE WHAT: stop before anything starts, saying which variable moves it, when
# another server already listens on PORT (the ready check would be answered by it, and the server started
# here would exit with its error in a log file).
ensure_port_free() {
  local port="$1" variable="$2" what="$3"
  "$VENV/bin/python" - "$port" <<'PY' && return 0
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: only a listener is in the way
try:
    sock.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
  die "port $port is in use by another server, and $what needs it. Stop that server, or choose another port:
    $variable=<free port> scripts/run.sh"
}

# write_demo_env FILE PORT TOKEN CONFIGURED: the settings of the running demo, as `export` lines that
# another shell sources (`source .data/demo.env`), so that `manage.py analyze`, scripts/demo.py and
# the README's snippets reach the same server, database, Redis and (offline) emulator.
write_demo_env() {
  local file="$1" port="$2" token="$3" configured="$4" name
  mkdir -p "$(dirname "$file")"
  ( umask 077
    {
      echo "# Written by scripts/run.sh while it runs (removed when it stops). Use: source .data/demo.env"
      printf 'export TOKEN=%q SCRIPTRIPPER_URL=%q\n' "$token" "http://localhost:$port"
      for name in DATABASE_URL REDIS_URL; do
        [ -n "${!name:-}" ] && printf 'export %s=%q\n' "$name" "${!name}"
      done
      if [ "$configured" = 0 ]; then
        echo "# Offline demo: the three SDKs point at the local emulator (SYNTHETIC answers)."
        echo "export SCRIPTRIPPER_OFFLINE_DEMO=1"
        for name in GEMINI_API_KEY OPENAI_API_KEY ANTHROPIC_API_KEY OPENAI_BASE_URL ANTHROPIC_BASE_URL \
                    GEMINI_BASE_URL GEMINI_API_VERSION; do
          printf 'export %s=%q\n' "$name" "${!name}"
        done
      fi
    } >"$file" )
}
