"""Per-user, per-plan throttles counted in Redis: 429 `throttled` with Retry-After."""

from __future__ import annotations

import pytest

from tests.conftest import client_for, make_user, transcript

pytestmark = pytest.mark.django_db

RATES = {
    "free": {"submit": (2, 60), "api": (5, 60)},
    "pro": {"submit": (4, 60), "api": (50, 60)},
}


@pytest.fixture(autouse=True)
def low_rates(settings):
    settings.THROTTLE_RATES = RATES


def submit(client):
    return client.post("/api/v1/jobs/analyze", {
        "transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Provide a brief summary"}}, format="json")


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    # Sliding window: at most two periods (a full window still weighs on the next one).
    assert 1 <= int(response["Retry-After"]) <= 120


def test_submissions_over_the_plan_rate_are_429_with_retry_after(alice_client):
    assert [submit(alice_client).status_code for _ in range(2)] == [202, 202]
    assert_throttled(submit(alice_client))


def test_reads_over_the_plan_rate_are_429(alice_client):
    assert all(alice_client.get("/api/v1/tokens").status_code == 200 for _ in range(5))
    assert_throttled(alice_client.get("/api/v1/tokens"))


def test_counts_are_per_user_not_per_token(alice, bob_client):
    first, second = client_for(alice), client_for(alice)
    assert submit(first).status_code == 202
    assert submit(second).status_code == 202
    assert_throttled(submit(first))
    # Bob has his own count.
    assert submit(bob_client).status_code == 202


def test_pro_plan_gets_its_own_rate(db):
    client = client_for(make_user("paula", plan="pro"))
    assert [submit(client).status_code for _ in range(4)] == [202] * 4
    assert_throttled(submit(client))


def test_unlimited_users_are_not_throttled(db):
    client = client_for(make_user("bench", unlimited=True))
    assert all(submit(client).status_code == 202 for _ in range(4))


def test_counts_live_in_redis_shared_by_every_process(alice_client, clean_redis):
    for _ in range(3):
        alice_client.get("/api/v1/tokens")
    keys = clean_redis.keys("*throttle:api:*")
    assert len(keys) == 1 and int(clean_redis.get(keys[0])) == 3
    # Another API process sees the same count: here, the count set from outside.
    clean_redis.set(keys[0], 5)
    assert_throttled(alice_client.get("/api/v1/tokens"))


def test_throttles_let_requests_through_when_redis_is_down(alice_client, settings, caplog):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    assert all(alice_client.get("/api/v1/tokens").status_code == 200 for _ in range(6))
    assert "throttle counter unavailable" in caplog.text


def test_no_token_is_401_not_429(client):
    # Unauthenticated requests are refused before any throttle counts them.
    assert client.get("/api/v1/tokens").status_code == 401


def test_a_full_window_still_counts_after_the_boundary_so_the_rate_cannot_double(alice_client, monkeypatch):
    import accounts.throttling

    clock = [6000.0 + 55]  # 55 s into a 60 s window
    monkeypatch.setattr(accounts.throttling.time, "time", lambda: clock[0])
    assert all(alice_client.get("/api/v1/tokens").status_code == 200 for _ in range(5))  # the api rate: 5/60 s
    clock[0] = 6000.0 + 60 + 5  # 10 s later, 5 s into the next window
    # A fixed window would allow 5 more at once (10 requests in 10 s); 55 s of the full window still count.
    response = alice_client.get("/api/v1/tokens")
    assert_throttled(response)
    wait = int(response["Retry-After"])
    clock[0] += wait
    assert alice_client.get("/api/v1/tokens").status_code == 200  # it said when, and it was right
    clock[0] = 6000.0 + 180  # two windows later nothing weighs any more
    assert all(alice_client.get("/api/v1/tokens").status_code == 200 for _ in range(5))


@pytest.mark.parametrize("limit,count,previous,into,expected", [
    # This window full (2 allowed + 1 refused): into the next one, until 1 + 3 * (1 - f) <= 2, f = 2/3.
    (2, 3, 0, 10.0, 50 + 40),
    # Room in this window, but the previous window's 4 still weigh: until 2 + 4 * (1 - f) <= 4, f = 1/2.
    (4, 1, 4, 15.0, 15),
])
def test_retry_after_is_when_the_next_request_fits(limit, count, previous, into, expected):
    from accounts.throttling import retry_after

    assert retry_after(limit=limit, period=60, count=count, previous=previous, into_window=into) == expected
