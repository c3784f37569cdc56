"""Shared fixtures: named users, API clients, the provider emulator, Redis, workers.

Everything runs on the real PostgreSQL (pytest-django's test database) and the
real Redis (database 13, flushed around each test), and provider calls go over
real HTTP through the official SDKs to the local emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import django_rq
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import api_token_create, user_upsert
from analysis.providers import reset_provider_clients
from emulator.server import Emulator

ROOT = Path(__file__).resolve().parent.parent
TRANSCRIPTS = ROOT.parent / "shared" / "transcripts"
if not TRANSCRIPTS.is_dir():  # a checkout without ../shared: the copies under tests/data
    TRANSCRIPTS = ROOT / "tests" / "data" / "transcripts"


def transcript(name: str) -> str:
    return (TRANSCRIPTS / name).read_text(encoding="utf-8")


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


@pytest.fixture(autouse=True)
def clean_redis():
    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


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


def worker_env(emulator, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess: the test database, test Redis, the emulator."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
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


def run_manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
