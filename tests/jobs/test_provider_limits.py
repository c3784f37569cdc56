"""Per-provider limits shared through Redis: requests in flight are bounded across tasks and
jobs, a slot left by a dead holder expires, and waiting for a slot is not an error."""

from __future__ import annotations

import subprocess
import sys
import time

import django_rq
import pytest

from analysis.engine.limits import ProviderLimiter
from tests.conftest import PROCESS_WAIT, ROOT, work_burst, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "Alice: We ship on Friday.\nBob: Then the demo is on Monday."


def submit(client, n: int, provider: str = "anthropic", model: str = "claude-haiku-4-5") -> str:
    tasks = {f"q{i}": f"Question {i}" for i in range(n)}
    response = client.post("/api/v1/jobs/analyze", {"transcript": TEXT, "provider": provider, "model": model,
                                                    "tasks": tasks}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def test_in_flight_requests_never_exceed_the_limit_across_concurrent_tasks(alice_client, emulator, settings):
    settings.PROVIDER_MAX_IN_FLIGHT = 2
    emulator.configure(latency=0.2)
    job_id = submit(alice_client, 6)
    work_burst()
    stats = emulator.stats()
    assert stats["requests"] == 6
    assert stats["in_flight_max"] == 2  # bounded, and the bound was reached
    data = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    # Waiting for a slot is not an error, and not a try.
    assert data["status"] == "finished" and data["result"]["errors"] == {}
    assert {t["tries"] for t in data["result"]["metadata"]["tasks"].values()} == {1}


@pytest.mark.subprocess
def test_in_flight_requests_are_bounded_across_worker_processes(alice_client, bob_client, emulator):
    """Two `rqworker --burst` processes, one job each: the limit holds across processes (through Redis)."""
    emulator.configure(latency=0.3)
    jobs = [(alice_client, submit(alice_client, 4)), (bob_client, submit(bob_client, 4))]
    env = worker_env(emulator, PROVIDER_MAX_IN_FLIGHT="2")
    command = [sys.executable, str(ROOT / "manage.py"), "rqworker", "default", "--burst"]
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=PROCESS_WAIT)
        assert worker.returncode == 0, stderr[-2000:]
    stats = emulator.stats()
    assert stats["requests"] == 8 and stats["in_flight_max"] == 2
    for client, job_id in jobs:
        data = client.get(f"/api/v1/jobs/{job_id}").json()
        assert data["status"] == "finished" and data["result"]["errors"] == {}


class Pauses(list):
    """A limiter's `sleep`: records each wait for a slot, then sleeps it."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


def limiter_of(clean_redis, **limits) -> ProviderLimiter:
    return ProviderLimiter(clean_redis, prefix="scriptripper:test-limits", **limits)


def test_a_slot_left_by_a_dead_holder_expires_with_its_lease(clean_redis):
    limiter = limiter_of(clean_redis, max_in_flight=1, per_minute=0, lease_seconds=0.6)
    limiter.acquire("openai")  # a worker SIGKILLed while holding the slot: it never releases it
    pauses = Pauses()
    # (The deadline only turns a lease that never expires into a failure instead of a hang.)
    with limiter.slot("openai", sleep=pauses, deadline=time.monotonic() + 60):
        pass
    assert pauses  # it waited for the dead holder's lease to run out, then got the slot


def test_a_released_slot_is_free_at_once(clean_redis):
    limiter = limiter_of(clean_redis, max_in_flight=1, per_minute=0, lease_seconds=60)
    with limiter.slot("gemini"):
        pass
    pauses = Pauses()
    with limiter.slot("gemini", sleep=pauses):
        assert pauses == []


def test_requests_per_minute_are_bounded(clean_redis):
    limiter = limiter_of(clean_redis, max_in_flight=0, per_minute=3, lease_seconds=60)
    pauses = Pauses()
    for _ in range(3):
        with limiter.slot("openai", sleep=pauses):
            assert pauses == []
    from analysis.engine.providers.base import ProviderError

    # The fourth would wait about a minute: past a short deadline it gives up as a rate limit, not a hang,
    # and at once (a wait it could not finish before the deadline is not started).
    with pytest.raises(ProviderError) as raised:
        with limiter.slot("openai", deadline=time.monotonic() + 0.3, sleep=pauses):
            pass
    assert raised.value.kind == "rate_limit" and raised.value.retryable
    assert pauses == []


def test_limits_are_per_provider(clean_redis):
    limiter = limiter_of(clean_redis, max_in_flight=1, per_minute=0, lease_seconds=60)
    pauses = Pauses()
    with limiter.slot("openai"):
        with limiter.slot("anthropic", sleep=pauses):
            assert pauses == []


def test_the_job_limiter_uses_the_queue_redis(settings):
    from jobs.worker.provider_limits import provider_limiter

    settings.PROVIDER_MAX_IN_FLIGHT = 3
    limiter = provider_limiter()
    ours, queues = limiter.redis.connection_pool.connection_kwargs, \
        django_rq.get_connection("default").connection_pool.connection_kwargs
    assert limiter.max_in_flight == 3
    assert (ours["host"], ours["port"], ours.get("db")) == (queues["host"], queues["port"], queues.get("db"))
    # A lease outlives the longest request, so a live holder never loses its slot.
    assert limiter.lease_seconds > settings.PROVIDER_REQUEST_TIMEOUT
