"""docker/Dockerfile, docker/compose.yml and .env.example, checked without a Docker engine.

The compose file is parsed as YAML and its promises checked (Redis AOF and noeviction, a
migrate one-shot, a worker that scales); `docker compose config` validates it where the
Compose client exists (it needs no engine). .env.example must name every variable that
scriptripper/settings.py reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker" / "compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
# Read by docker/compose.yml or gunicorn in the image, not by settings.py.
DOCKER_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "API_PORT", "WEB_CONCURRENCY"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def settings_variables() -> set[str]:
    # env_int("X", ...), env.str("X", ...), env_rate("X", ...), ... : every helper takes the name first.
    source = (ROOT / "scriptripper" / "settings.py").read_text()
    return set(re.findall(r'\benv(?:_[a-z_]+|\.[a-z_]+)\(\s*"([A-Z][A-Z0-9_]*)"', source))


HA_SERVICES = {"redis-primary", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3", "pgbouncer", "api-ha",
               "worker-ha"}


def test_compose_services_and_their_order(compose):
    services = {name: service for name, service in compose["services"].items() if not service.get("profiles")}
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert services[name]["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        environment = services[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_redis_never_loses_rq_keys(compose):
    command = compose["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    flags = " ".join(command[1:])
    assert "--appendonly yes" in flags
    assert "--maxmemory-policy noeviction" in flags
    assert any(volume.endswith(":/data") for volume in compose["services"]["redis"]["volumes"])


def test_worker_scales(compose):
    worker = compose["services"]["worker"]
    assert worker["command"] == ["python", "manage.py", "rqworker", "high", "default", "low"]
    # `--scale worker=3` fails on a fixed container name or a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["stop_signal"] == "SIGTERM"
    api = compose["services"]["api"]
    assert "command" not in api  # the image's CMD: gunicorn


def test_the_ha_profile_runs_redis_behind_sentinels_and_postgresql_behind_pgbouncer(compose):
    services = compose["services"]
    assert {name for name, service in services.items() if "ha" in service.get("profiles", [])} == HA_SERVICES
    # A primary and its replica, both keeping RQ's keys as the single `redis` does.
    primary, replica = services["redis-primary"], services["redis-replica"]
    for server in (primary, replica):
        flags = " ".join(server["command"][1:])
        assert "--appendonly yes" in flags and "--maxmemory-policy noeviction" in flags
    assert " ".join(replica["command"]).endswith("--replicaof redis-primary 6379")
    # Three Sentinels, each its own host name and volume (they rewrite their configuration), quorum 2.
    sentinels = [services[f"sentinel-{n}"] for n in (1, 2, 3)]
    assert len({s["hostname"] for s in sentinels}) == 3 and len({s["volumes"][0] for s in sentinels}) == 3
    monitor = re.search(r"sentinel monitor (\S+) redis-primary 6379 (\d)", sentinels[0]["command"][-1])
    assert monitor and monitor.group(2) == "2"
    # The application: through the Sentinels (every one), and through PgBouncer in transaction mode.
    for name in ("api-ha", "worker-ha"):
        service = services[name]
        environment = service["environment"]
        assert environment["REDIS_SENTINELS"] == ",".join(f"{s['hostname']}:26379" for s in sentinels)
        assert environment["REDIS_SENTINEL_MASTER"] == monitor.group(1)
        assert "@pgbouncer:6432/" in environment["DATABASE_URL"]
        assert environment["DATABASE_POOL_MODE"] == "transaction"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert {dependency for dependency, condition in service["depends_on"].items()
                if condition["condition"] == "service_healthy"} == {"pgbouncer", "sentinel-1", "sentinel-2",
                                                                    "sentinel-3"}
    assert services["worker-ha"]["command"] == ["python", "manage.py", "rqworker", "high", "default", "low"]
    assert "container_name" not in services["worker-ha"] and "ports" not in services["worker-ha"]
    # Migrations go to PostgreSQL itself; PgBouncer runs the deployment's pgbouncer.ini.
    assert "@postgres:5432/" in services["migrate"]["environment"]["DATABASE_URL"]
    assert "./pgbouncer.ini:/etc/pgbouncer/pgbouncer.ini:ro" in services["pgbouncer"]["volumes"]
    ini = (ROOT / "docker" / "pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = transaction$", ini, re.M) and re.search(r"^listen_port = 6432$", ini, re.M)
    assert re.search(r"^scriptripper = host=postgres port=5432 .*timezone=UTC", ini, re.M)


def test_every_variable_the_compose_file_gives_the_application_is_one_the_settings_read(compose):
    read = settings_variables()
    application = {name: service for name, service in compose["services"].items()
                   if service.get("image") == "scriptripper:latest"}
    assert set(application) == {"migrate", "api", "worker", "api-ha", "worker-ha"}
    for name, service in application.items():
        unread = set(service["environment"]) - read
        assert not unread, f"{name} sets {sorted(unread)}, which scriptripper/settings.py never reads"
    # And the settings make of the `ha` values what they promise: the Sentinels, PgBouncer in transaction mode.
    given = {"POSTGRES_PASSWORD": "example-password", "ENVIRONMENT": "development"}
    environment = {key: re.sub(r"\$\{(\w+)[^}]*\}", lambda m: given[m.group(1)], str(value))
                   for key, value in application["api-ha"]["environment"].items()}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "DATABASE_"))}
    probe = ("import json, runpy; s = runpy.run_path('scriptripper/settings.py'); db = s['DATABASES']['default']; "
             "print(json.dumps([s['RQ_QUEUES']['default'], db['HOST'], db['PORT'], db['OPTIONS'], "
             "db.get('DISABLE_SERVER_SIDE_CURSORS')]))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**env, **environment}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    queue, host, port, options, no_server_side_cursors = json.loads(result.stdout.strip().splitlines()[-1])
    assert queue["SENTINELS"] == [[f"sentinel-{n}", 26379] for n in (1, 2, 3)] and queue["DB"] == 0
    assert queue["MASTER_NAME"] == "scriptripper" and "URL" not in queue
    assert (host, port) == ("pgbouncer", 6432) and "options" not in options and no_server_side_cursors is True


def test_the_readme_shows_the_pgbouncer_ini_that_runs():
    # The tests' PgBouncer runs this file (tests/servers.py); the README shows it, as it is.
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"```ini\n(; PgBouncer in front of ScriptRipper.*?)```", readme, re.S)
    assert shown and shown.group(1) == (ROOT / "docker" / "pgbouncer.ini").read_text()


def test_dockerfile_slim_pinned_non_root_gunicorn():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.13-slim\b", text, re.M)
    assert "pip install --no-compile -r requirements/base.txt" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = re.search(r"^CMD (\[.*?\])\s*$", text, re.M | re.S).group(1)
    assert '"gunicorn"' in cmd and "scriptripper.wsgi:application" in cmd
    # Pinned requirements: every line of base.txt is name==version.
    for line in (ROOT / "requirements" / "base.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.\-]*", line), line


def test_secrets_and_local_state_stay_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".git", ".data"} <= ignored


def test_env_example_lists_every_setting():
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    used = settings_variables()
    assert len(used) > 40  # the regex really reads settings.py
    missing = used - listed
    assert not missing, f"add to .env.example (with default and meaning): {sorted(missing)}"
    stale = listed - used - DOCKER_ONLY_VARIABLES
    assert not stale, f".env.example names variables nothing reads: {sorted(stale)}"


def compose_client() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_config_accepts_the_file(tmp_path):
    command = compose_client()
    if command is None:
        pytest.skip("no Docker Compose client here (neither `docker compose` nor `docker-compose`); "
                    "the file was checked as YAML only")
    env = {**os.environ, "POSTGRES_PASSWORD": "example-password"}
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                            timeout=60, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    # Without the password the file refuses to start, naming what is missing.
    env.pop("POSTGRES_PASSWORD")
    refused = subprocess.run([*command, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                             timeout=60, env=env, cwd=tmp_path)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr
