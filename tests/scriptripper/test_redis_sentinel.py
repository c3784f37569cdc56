"""REDIS_SENTINELS: the settings read it loudly, and every Redis user of the project goes through the Sentinels
for the current primary: the queues, the monitoring (/healthz, /metrics), the cache behind the throttles, the
system checks, manage.py's commands and RQ's own command line.

The live tests run on a private Redis primary with a replica and three Sentinels (tests/servers.py); what a
client writes is read back on the primary itself. The failover is tests/jobs/test_redis_failover.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import django_rq
import pytest
from django.core.cache import cache
from rq import Queue

from tests.conftest import PROCESS_WAIT, ROOT, run_manage
from tests.servers import RedisSentinelGroup

# Imports the settings module under each environment (a fresh run of its code each time, in a process of its
# own: settings.py also reads a developer's .env) and prints what the Redis settings became, or the error.
SETTINGS_PROBE = """
import json, os, runpy, sys
from django.core.exceptions import ImproperlyConfigured
out = []
for changes in json.loads(sys.argv[1]):
    for key in ("REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_DB", "REDIS_PASSWORD",
                "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_TLS"):
        os.environ.pop(key, None)
    os.environ.update(changes)
    try:
        s = runpy.run_path("scriptripper/settings.py")
        out.append({"queue": {k: v for k, v in s["RQ_QUEUES"]["default"].items() if k != "DEFAULT_TIMEOUT"},
                    "cache": s["CACHES"]["default"]["BACKEND"], "location": s["CACHES"]["default"]["LOCATION"]})
    except ImproperlyConfigured as exc:
        out.append({"error": str(exc)})
print(json.dumps(out))
"""


def settings_under(*environments: dict[str, str]) -> list[dict]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scriptripper.settings"}
    result = subprocess.run([sys.executable, "-c", SETTINGS_PROBE, json.dumps(environments)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=PROCESS_WAIT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_settings_read_the_sentinels_loudly():
    sentinels = {"REDIS_SENTINELS": "10.0.0.1:26379, 10.0.0.2:26379,[fd00::3]:26380",
                 "REDIS_SENTINEL_MASTER": "queues"}
    plain, tls_url, through, own_db, secrets, no_master, malformed, stray = settings_under(
        {"REDIS_URL": "redis://cache.internal:7000/4"},
        {"REDIS_URL": "rediss://:pw@cache.internal:6380/2"},
        {"REDIS_URL": "redis://cache.internal:7000/4", **sentinels},
        {**sentinels, "REDIS_DB": "7"},
        {**sentinels, "REDIS_PASSWORD": "server-secret", "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
         "REDIS_SENTINEL_TLS": "true"},
        {"REDIS_SENTINELS": "10.0.0.1:26379"},
        {"REDIS_SENTINELS": "10.0.0.1", "REDIS_SENTINEL_MASTER": "queues"},
        {"REDIS_URL": "redis://cache.internal:7000/4", "REDIS_PASSWORD": "ignored?"},
    )
    # REDIS_URL alone: as it always was, TLS included; Django's own cache backend.
    assert plain == {"queue": {"URL": "redis://cache.internal:7000/4"},
                     "cache": "django.core.cache.backends.redis.RedisCache",
                     "location": "redis://cache.internal:7000/4"}
    assert tls_url["queue"] == {"URL": "rediss://:pw@cache.internal:6380/2"}
    # The Sentinels win; REDIS_URL lends its database number unless REDIS_DB is set.
    assert through["queue"]["SENTINELS"] == [["10.0.0.1", 26379], ["10.0.0.2", 26379], ["fd00::3", 26380]]
    assert through["queue"]["MASTER_NAME"] == "queues" and through["queue"]["DB"] == 4
    assert through["cache"] == "scriptripper.cache.SentinelRedisCache"
    assert through["location"] == "10.0.0.1:26379,10.0.0.2:26379,[fd00::3]:26380"
    assert own_db["queue"]["DB"] == 7
    assert secrets["queue"]["PASSWORD"] == "server-secret"
    assert secrets["queue"]["SENTINEL_KWARGS"]["password"] == "sentinel-secret"
    assert secrets["queue"]["SENTINEL_KWARGS"]["ssl"] is True and secrets["queue"]["CONNECTION_KWARGS"]["ssl"] is True
    assert "ssl" not in through["queue"]["CONNECTION_KWARGS"]
    assert "REDIS_SENTINEL_MASTER must name the primary" in no_master["error"]
    assert "REDIS_SENTINELS must be host:port" in malformed["error"]
    assert "REDIS_PASSWORD: read only with REDIS_SENTINELS set" in stray["error"]


# --- on live Sentinels -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def group(tmp_path_factory):
    with RedisSentinelGroup(tmp_path_factory.mktemp("sentinels"), master="sr-clients") as running:
        yield running


@pytest.fixture
def through_sentinels(group, settings):
    """This process's settings pointed at the Sentinels, as the environment would; the primary, emptied."""
    for name, value in group.project_settings().items():
        setattr(settings, name, value)
    primary = group.client(group.primary())
    primary.flushdb()
    yield primary
    primary.flushdb()


@pytest.mark.django_db
def test_queues_cache_throttles_and_healthz_reach_the_primary(through_sentinels, alice_client, client):
    from scriptripper.monitoring import redis_connection
    from jobs.queues import rq_connection, rq_queue

    primary = through_sentinels
    rq_queue("default").enqueue("bench.noop.noop", job_id="via-sentinels")
    assert primary.lrange("rq:queue:default", 0, -1) == [b"via-sentinels"]
    assert django_rq.get_connection("default").llen("rq:queue:default") == 1  # django-rq's own client too
    rq_connection().set("sr:probe", "queues")
    assert redis_connection().get("sr:probe") == b"queues"
    cache.set("probe", "cached")
    assert cache.get("probe") == "cached" and primary.exists("sr-cache:1:probe")
    alice_client.get("/api/v1/tokens")
    assert primary.keys("sr-cache:*throttle:api:*")  # the throttle counts on the primary
    health = client.get("/healthz").json()
    assert health["checks"]["redis"]["status"] == "ok", health
    assert 'scriptripper_source_up{source="redis"} 1.0' in client.get("/metrics").content.decode()


def test_manage_py_and_rq_command_line_through_the_sentinels(group, tmp_path):
    primary = group.client(group.primary())
    primary.flushdb()
    env = {**os.environ, **group.env(), "DJANGO_SETTINGS_MODULE": "scriptripper.settings",
           "REDIS_URL": "redis://127.0.0.1:1/0"}  # a closed port: anything that used it would fail
    check = run_manage("check", "--fail-level", "WARNING", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    suspend = run_manage("rqsuspend", env=env)  # django-rq's command, on RQ_QUEUES
    assert suspend.returncode == 0 and primary.exists("rq:suspended"), suspend.stderr
    Queue("high", connection=primary).enqueue("bench.noop.noop")
    rq = str(Path(sys.executable).parent / "rq")
    info = subprocess.run([rq, "info", "-c", "scriptripper.rq_cli"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=PROCESS_WAIT)
    assert info.returncode == 0 and "1 queues, 1 jobs total" in info.stdout, info.stdout + info.stderr
    resume = subprocess.run([rq, "resume", "-c", "scriptripper.rq_cli"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=PROCESS_WAIT)
    assert resume.returncode == 0 and not primary.exists("rq:suspended"), resume.stderr
    # One Sentinel named: the system check says a client could not find the primary while it is down.
    one = run_manage("check", env={**env, "REDIS_SENTINELS": f"127.0.0.1:{group.sentinel_ports[0]}"})
    assert "scriptripper.W003" in one.stderr + one.stdout
