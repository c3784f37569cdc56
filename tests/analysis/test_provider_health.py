"""The provider health store on the real Redis (analysis/engine/health.py): circuits per provider and model,
shared by every process, changed only by atomic scripts.

Time is real and short (cooldowns of a fraction of a second); every wait is on a condition or a due time.
"""

from __future__ import annotations

import threading
import time

import pytest
from redis import Redis

from analysis.engine.health import DEGRADED, OK, OPEN, CircuitPolicy, RedisProviderHealth
from analysis.engine.providers.base import AUTH, BAD_REQUEST, SERVER, ProviderError

POLICY = CircuitPolicy(failure_threshold=3, cooldown=0.4, max_cooldown=1.6)


@pytest.fixture
def health(clean_redis: Redis) -> RedisProviderHealth:
    return RedisProviderHealth(clean_redis, POLICY, prefix="test:health")


def failure(kind: str = SERVER, retry_after: float | None = None) -> ProviderError:
    return ProviderError("openai", kind, f"OpenAI {kind}", retry_after=retry_after)


def fail(health: RedisProviderHealth, times: int, **kw) -> list[str]:
    return [health.record("openai", "gpt-4o-mini", error=failure(**kw), probe=False) for _ in range(times)]


def state(health: RedisProviderHealth, model: str = "gpt-4o-mini"):
    return health.snapshot([("openai", model)])[("openai", model)]


def test_consecutive_failures_open_the_circuit_and_a_success_before_resets_the_count(health):
    assert health.admit("openai", "gpt-4o-mini").clean
    assert fail(health, 2) == ["closed", "closed"]
    assert state(health).state == DEGRADED and state(health).failures == 2
    health.record("openai", "gpt-4o-mini", error=None, probe=False)  # not consecutive any more
    assert state(health).state == OK
    assert fail(health, 3) == ["closed", "closed", "opened"]
    snapshot = state(health)
    assert snapshot.state == OPEN and snapshot.last_error_kind == SERVER and snapshot.cooldown == POLICY.cooldown
    refused = health.admit("openai", "gpt-4o-mini")
    assert not refused.allowed and 0 < refused.retry_in <= POLICY.cooldown and refused.last_kind == SERVER
    # Per model: the provider's other models are not touched.
    assert health.admit("openai", "gpt-4o").allowed and state(health, "gpt-4o").state == OK


def test_one_probe_per_cooldown_whoever_asks_and_a_failed_probe_doubles_the_cooldown(health):
    fail(health, 3)
    time.sleep(POLICY.cooldown)  # the due time, not a synchronisation
    # Twenty threads ask at once when the probe is due: exactly one gets it.
    admissions, start = [], threading.Barrier(20)

    def ask():
        start.wait()
        admissions.append(health.admit("openai", "gpt-4o-mini"))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a.allowed for a in admissions) == 1 and sum(a.probe for a in admissions) == 1
    # The probe failed: open again, for twice as long.
    assert health.record("openai", "gpt-4o-mini", error=failure(), probe=True) == "open"
    assert state(health).cooldown == 2 * POLICY.cooldown
    refused = health.admit("openai", "gpt-4o-mini")
    assert not refused.allowed and refused.retry_in > POLICY.cooldown
    # Failures of requests that were already out while it was open change nothing of the schedule.
    before = state(health).open_until
    fail(health, 2)
    assert state(health).open_until == before


def test_the_cooldown_doubles_up_to_its_maximum_and_a_success_closes_the_circuit(health):
    fail(health, 3)
    for expected in (0.8, 1.6, 1.6):
        health.redis.hset(health._key("openai", "gpt-4o-mini"), "open_until", "0")  # make the probe due now
        assert health.admit("openai", "gpt-4o-mini").probe
        health.record("openai", "gpt-4o-mini", error=failure(), probe=True)
        assert state(health).cooldown == expected
    health.redis.hset(health._key("openai", "gpt-4o-mini"), "open_until", "0")
    assert health.admit("openai", "gpt-4o-mini").probe
    assert health.record("openai", "gpt-4o-mini", error=None, probe=True) == "closed"
    closed = state(health)
    assert closed.state == OK and closed.failures == 0 and closed.last_error_kind == SERVER  # the last error stays
    assert health.admit("openai", "gpt-4o-mini").allowed


def test_a_long_retry_after_keeps_the_circuit_open_as_long_within_the_maximum(health):
    outcomes = fail(health, 3, retry_after=1.2)
    assert outcomes[-1] == "opened" and state(health).cooldown == 1.2
    health.redis.delete(health._key("openai", "gpt-4o-mini"))
    fail(health, 3, retry_after=3600)
    assert state(health).cooldown == POLICY.max_cooldown


def test_failures_further_apart_than_the_maximum_cooldown_are_not_consecutive(health):
    fail(health, 2)
    key = health._key("openai", "gpt-4o-mini")
    health.redis.hset(key, "last_failure_at", str(time.time() - POLICY.max_cooldown - 1))
    assert state(health).state == OK  # shown as ok once the failures stopped counting
    assert fail(health, 2) == ["closed", "closed"]  # counted from one again: not open
    assert state(health).failures == 2


def test_the_store_lists_what_it_holds_and_every_process_sees_the_same(health, clean_redis):
    fail(health, 3)
    other = RedisProviderHealth(Redis(connection_pool=clean_redis.connection_pool), POLICY, prefix="test:health")
    assert other.models() == [("openai", "gpt-4o-mini")]
    assert other.snapshot()[("openai", "gpt-4o-mini")].state == OPEN
    assert not other.admit("openai", "gpt-4o-mini").allowed


def test_the_operator_is_alerted_once_per_cooldown(health):
    assert health.alert_once("openai", AUTH) is True
    assert health.alert_once("openai", AUTH) is False
    assert health.alert_once("anthropic", AUTH) is True


def test_redis_unreachable_lets_requests_through_and_records_nothing():
    down = RedisProviderHealth(Redis(port=1, socket_connect_timeout=0.2), POLICY)
    assert down.admit("openai", "gpt-4o-mini").allowed
    assert down.record("openai", "gpt-4o-mini", error=failure(), probe=False) == ""
    assert down.alert_once("openai", AUTH) is False


def test_only_failures_that_say_the_model_cannot_answer_count(emulator, settings, clean_redis):
    """Through the Runner: a bad request (the request's own fault) never counts towards a circuit."""
    from analysis.analyze import provider_health, run_analysis, run_config
    from analysis.engine.planning import TaskSpec
    from emulator.server import faults

    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    emulator.add_faults(faults.status(400, "openai", times=-1))
    health = provider_health(clean_redis)
    config = run_config(provider="openai", model="gpt-4o-mini")
    outcomes = run_analysis(transcript="Alice: hi", config=config, health=health,
                            tasks=[TaskSpec(name=f"t{i}", prompt=f"Question {i}") for i in range(4)])
    assert all(o.error_kind == BAD_REQUEST for o in outcomes)
    assert health.snapshot([("openai", "gpt-4o-mini")])[("openai", "gpt-4o-mini")].state == OK
