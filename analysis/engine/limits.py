"""Per-provider limits shared by every worker on every machine, through Redis.

Two limits per provider: requests in flight, and requests started per minute.
A slot is a lease (a sorted-set member scored by its expiry), so a worker that
is SIGKILLed while holding one cannot hold it forever: expired members are
dropped by the next acquire. Each lease names its holder (the worker), so whoever
finds that worker dead releases all its leases at once (release_holder) instead of
leaving the fleet short of slots until they expire. Waiting for a slot is not an error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from analysis.engine.providers.base import RATE_LIMIT, ProviderError

# KEYS[1] in-flight zset, KEYS[2] per-minute zset; ARGV now, lease_s, max_in_flight, per_minute, member
_ACQUIRE = """
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local max_in_flight = tonumber(ARGV[3])
local per_minute = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if max_in_flight > 0 and redis.call('ZCARD', KEYS[1]) >= max_in_flight then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(math.min(0.25, tonumber(first[2]) - now))}
end
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
  if redis.call('ZCARD', KEYS[2]) >= per_minute then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, tostring(tonumber(oldest[2]) + 60 - now)}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('EXPIRE', KEYS[2], 120)
end
if max_in_flight > 0 then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[5])
  redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 60)
end
return {1, '0'}
"""


# Between a lease's holder and its own id: worker names (RQ's) never contain it.
HOLDER_SEPARATOR = "|"


class ProviderLimiter:
    def __init__(self, redis: Redis, *, max_in_flight: int, per_minute: int, lease_seconds: float,
                 prefix: str = "scriptripper:limits", limits: Mapping[str, int] | None = None,
                 holder: str = "") -> None:
        self.redis = redis
        self.holder = holder  # written into every lease this limiter takes (release_holder)
        self.max_in_flight = max_in_flight
        # Per-name in-flight limits that replace max_in_flight (named endpoints: a 2-slot local server).
        self.limits: dict[str, int] = dict(limits or {})
        self.per_minute = per_minute
        self.lease_seconds = lease_seconds
        self.prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)

    @property
    def enabled(self) -> bool:
        return self.max_in_flight > 0 or self.per_minute > 0 or any(v > 0 for v in self.limits.values())

    @contextmanager
    def slot(self, provider: str, *, deadline: float | None = None,
             sleep: Callable[[float], None] = time.sleep) -> Iterator[float]:
        """Hold one request slot for `provider`; yields the seconds spent waiting."""
        started = time.monotonic()
        member = self.acquire(provider, deadline=deadline, sleep=sleep)
        try:
            yield time.monotonic() - started
        finally:
            self.release(provider, member)

    def acquire(self, provider: str, *, deadline: float | None = None,
                sleep: Callable[[float], None] = time.sleep) -> str | None:
        """Take one request slot for `provider`, waiting for one; returns the lease to release.

        Waiting is not an error: only a wait that reaches `deadline` (a time.monotonic() value, the
        task's) raises, as a retryable rate-limit ProviderError, which the retry loop then reports.
        `sleep` is the caller's (a job's stop token ends the wait when the job is stopped). Redis
        unreachable is waited out too: the limit cannot be checked, and sending anyway could
        overrun it on every worker at once.
        """
        if not self.enabled:
            return None
        max_in_flight = self.limits.get(provider, self.max_in_flight)
        member = f"{self.holder}{HOLDER_SEPARATOR}{uuid.uuid4().hex}"
        keys = self._keys(provider)
        waited_from = time.monotonic()
        while True:
            try:
                # Redis time is not used: the scores only need to agree between the workers, whose
                # clocks NTP keeps within milliseconds, far below the lease and the minute window.
                ok, wait = self._acquire(keys=keys, args=[time.time(), self.lease_seconds, max_in_flight,
                                                          self.per_minute, member])
            except (RedisConnectionError, RedisTimeoutError):
                ok, wait = 0, 1.0
            if int(ok) == 1:
                return member
            pause = min(max(float(wait), 0.02), 1.0)
            if deadline is not None and time.monotonic() + pause >= deadline:
                waited = time.monotonic() - waited_from
                raise ProviderError(provider, RATE_LIMIT,
                                    f"no free {provider} request slot after waiting {waited:.0f} s "
                                    f"(max in flight {max_in_flight}, "
                                    f"PROVIDER_MAX_PER_MINUTE={self.per_minute})")
            sleep(pause)

    def release(self, provider: str, member: str | None) -> None:
        if member is None:
            return
        try:
            self.redis.zrem(self._keys(provider)[0], member)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # the lease expires by itself (lease_seconds)

    def release_holder(self, holder: str) -> int:
        """Drop every in-flight lease `holder` took, for every provider: it is known dead (its calls went with
        it). Returns how many were dropped."""
        dropped = 0
        for key in self.redis.scan_iter(match=f"{self.prefix}:*:inflight", count=100):
            members = [member for member, _ in self.redis.zscan_iter(key, match=f"{holder}{HOLDER_SEPARATOR}*")]
            if members:
                dropped += self.redis.zrem(key, *members)
        return dropped

    def _keys(self, provider: str) -> list[str]:
        return [f"{self.prefix}:{provider}:inflight", f"{self.prefix}:{provider}:minute"]
