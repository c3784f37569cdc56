"""Provider health, shared by every worker and API process through Redis: one circuit per provider (or named
endpoint) and model.

A model whose requests keep failing in a way that says it cannot answer now (HEALTH_FAILURE_KINDS: 5xx, 429,
timeouts, dropped connections, garbage, a refused key, no quota, the model gone) opens its circuit after
`failure_threshold` consecutive failures (failures further apart than `max_cooldown` are not consecutive).
While it is open, nobody sends it a request: a task with a fallback chain goes straight to its next model, a task
without one waits. Once the cooldown has passed, the first request to ask is let through as the probe, and the
next probe is due a cooldown later whatever becomes of this one (a probe whose worker dies holds nothing); a
failed probe doubles the cooldown up to `max_cooldown`; any success closes the circuit.

Everything lives in one Redis hash per model, changed only by Lua scripts (atomic: two workers cannot both
take the probe), plus an index set for the listing. Nothing is kept in a process's memory, so every worker
and every API process sees the same state; the hashes expire a day after their last write.

Redis unreachable: a request is let through (the health cannot be read, and refusing every call would turn a
Redis outage into a provider outage) and its outcome goes unrecorded.

Pure engine: redis-py and the standard library only; the app builds it from settings (analysis.clients).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from redis import Redis
from redis.exceptions import RedisError

from analysis.engine.providers.base import (
    AUTH, CONNECTION, MALFORMED, NOT_FOUND, PERMISSION, QUOTA, RATE_LIMIT, SERVER, TIMEOUT, ProviderError,
)

logger = logging.getLogger(__name__)

# What GET /api/v1/models and /metrics show of a model: answering normally, failing lately, or refused requests.
OK, DEGRADED, OPEN = "ok", "degraded", "open"
STATES = (OK, DEGRADED, OPEN)

# Failures that say the model cannot answer anyone now; one request's own problem (bad_request, context_length,
# a blocked answer, an invalid structured answer) says nothing of the provider and is not counted.
HEALTH_FAILURE_KINDS = frozenset({RATE_LIMIT, SERVER, TIMEOUT, CONNECTION, MALFORMED, AUTH, PERMISSION, QUOTA,
                                  NOT_FOUND})

# A model's hash lives this long after its last write: a circuit nobody has touched for a day is forgotten (ok).
KEY_TTL_S = 86_400


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int = 5  # consecutive failures that open the circuit
    cooldown: float = 30.0  # seconds the circuit stays open the first time
    max_cooldown: float = 300.0  # the cooldown doubles after each failed probe, up to this


@dataclass(frozen=True)
class Admission:
    """Whether a request to a model may go out now."""

    allowed: bool
    probe: bool = False  # this request is the one probe of an open circuit
    clean: bool = False  # nothing on record against the model: a success need not be reported
    retry_in: float = 0.0  # refused: seconds until the next probe is due
    last_kind: str = ""  # refused: the failure kind that opened the circuit


ALLOWED = Admission(allowed=True, clean=True)


@dataclass(frozen=True)
class ModelHealth:
    provider: str
    model: str
    state: str  # OK, DEGRADED or OPEN
    since: float | None  # Unix time the state began (None: nothing on record)
    failures: int  # consecutive failures
    last_error_kind: str
    last_error: str
    last_error_at: float | None
    open_until: float | None  # when the next probe is due (open only)
    cooldown: float  # the current cooldown (open only)


class ProviderHealth(Protocol):
    """What the Runner asks of the health store (analysis/engine/runner.py)."""

    def admit(self, provider: str, model: str) -> Admission: ...

    def record(self, provider: str, model: str, *, error: ProviderError | None, probe: bool) -> str: ...

    def alert_once(self, provider: str, kind: str) -> bool: ...

    def is_open(self, provider: str, model: str) -> bool: ...


# KEYS[1] the model's hash; ARGV now
_ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {1, 0, 1, '0', ''} end
if state ~= 'open' then
  local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
  if failures == 0 then return {1, 0, 1, '0', ''} end
  return {1, 0, 0, '0', ''}
end
local now = tonumber(ARGV[1])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now >= open_until then
  -- This caller is the probe; the next one is due a cooldown from now, whatever becomes of this one.
  local cooldown = tonumber(redis.call('HGET', KEYS[1], 'cooldown') or '0')
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown), 'probe_at', ARGV[1])
  return {1, 1, 0, '0', ''}
end
return {0, 0, 0, tostring(open_until - now), redis.call('HGET', KEYS[1], 'last_kind') or ''}
"""

# KEYS[1] the model's hash, KEYS[2] the index set; ARGV now, ok (1/0), kind, message, probe (1/0), threshold,
# cooldown, max cooldown, retry_after, index member, ttl. Returns the circuit's state afterwards, or 'opened'.
_RECORD = """
local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local max_cooldown = tonumber(ARGV[8])
if ARGV[2] == '1' then
  if state == 'closed' and failures == 0 then return 'closed' end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'cooldown', '0', 'since', ARGV[1])
  redis.call('HDEL', KEYS[1], 'open_until', 'probe_at', 'opened_at')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[11]))
  return 'closed'
end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_failure_at') or '0')
if now - last > max_cooldown then failures = 0 end
failures = failures + 1
redis.call('HSET', KEYS[1], 'failures', tostring(failures), 'last_kind', ARGV[3], 'last_error', ARGV[4],
           'last_failure_at', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[10])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[11]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[11]))
local asked = math.min(tonumber(ARGV[9]), max_cooldown)
if state == 'open' then
  if ARGV[5] == '1' then
    local cooldown = math.max(math.min(tonumber(redis.call('HGET', KEYS[1], 'cooldown') or ARGV[7]) * 2,
                                       max_cooldown), asked)
    redis.call('HSET', KEYS[1], 'cooldown', tostring(cooldown), 'open_until', tostring(now + cooldown))
  end
  return 'open'
end
if failures >= tonumber(ARGV[6]) then
  local cooldown = math.max(tonumber(ARGV[7]), asked)
  redis.call('HSET', KEYS[1], 'state', 'open', 'cooldown', tostring(cooldown), 'open_until', tostring(now + cooldown),
             'opened_at', ARGV[1], 'since', ARGV[1])
  return 'opened'
end
if failures == 1 then redis.call('HSET', KEYS[1], 'state', 'closed', 'since', ARGV[1]) end
return 'closed'
"""

_FIELDS = ("state", "failures", "since", "last_kind", "last_error", "last_failure_at", "open_until", "cooldown")


class RedisProviderHealth:
    """ProviderHealth on a Redis client it is handed (the worker's, or a short-timeout one for the API)."""

    def __init__(self, redis: Redis, policy: CircuitPolicy | None = None, *,
                 prefix: str = "scriptripper:health") -> None:
        self.redis = redis
        self.policy = policy or CircuitPolicy()
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._record = redis.register_script(_RECORD)

    def _key(self, provider: str, model: str) -> str:
        return f"{self.prefix}:{provider}:{model}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:models"

    def admit(self, provider: str, model: str) -> Admission:
        try:
            allowed, probe, clean, retry_in, kind = self._admit(keys=[self._key(provider, model)], args=[time.time()])
        except RedisError:
            return ALLOWED
        if int(allowed):
            return Admission(allowed=True, probe=bool(int(probe)), clean=bool(int(clean)))
        return Admission(allowed=False, retry_in=max(float(retry_in), 0.0), last_kind=_text(kind))

    def record(self, provider: str, model: str, *, error: ProviderError | None, probe: bool = False) -> str:
        """Record one request's outcome (a success, or a failure of HEALTH_FAILURE_KINDS); the circuit's state
        afterwards ("closed", "open", or "opened" when this failure opened it). "" when Redis did not answer."""
        policy = self.policy
        ok = error is None
        try:
            result = self._record(keys=[self._key(provider, model), self._index], args=[
                time.time(), 1 if ok else 0, "" if ok else error.kind, "" if ok else error.message[:500],
                1 if probe else 0, policy.failure_threshold, policy.cooldown, policy.max_cooldown,
                0 if ok or error.retry_after is None else error.retry_after, f"{provider}/{model}", KEY_TTL_S])
        except RedisError:
            return ""
        return _text(result)

    def is_open(self, provider: str, model: str) -> bool:
        """Whether the model's circuit is open now (a read: the probe, when due, is left to admit)."""
        try:
            return self.redis.hget(self._key(provider, model), "state") == b"open"
        except RedisError:
            return False

    def alert_once(self, provider: str, kind: str) -> bool:
        """True for the first caller in a cooldown, across every process: who should tell the operator loudly."""
        try:
            return bool(self.redis.set(f"{self.prefix}:alert:{provider}:{kind}", "1", nx=True,
                                       ex=max(1, int(self.policy.cooldown))))
        except RedisError:
            return False

    # --- reads (GET /api/v1/models, /metrics, the admin's charts) -------------------------------------
    def models(self) -> list[tuple[str, str]]:
        """(provider, model) of every model with something on record, sorted."""
        members = self.redis.smembers(self._index)
        pairs = [tuple(_text(m).split("/", 1)) for m in members]
        return sorted((p[0], p[1]) for p in pairs if len(p) == 2)

    def snapshot(self, models: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], ModelHealth]:
        """The health of these models (all on record when None), by (provider, model); one round trip.
        Raises RedisError: the caller decides what an unreadable store means."""
        pairs = list(self.models() if models is None else models)
        pipe = self.redis.pipeline(transaction=False)
        for provider, model in pairs:
            pipe.hmget(self._key(provider, model), _FIELDS)
        now = time.time()
        return {pair: self._health(pair, values, now) for pair, values in zip(pairs, pipe.execute(), strict=True)}

    def _health(self, pair: tuple[str, str], values: list, now: float) -> ModelHealth:
        state, failures, since, kind, message, failed_at, open_until, cooldown = (
            _text(v) if v is not None else None for v in values)
        failures_n = int(failures or 0)
        failed = float(failed_at) if failed_at else None
        shown = OK
        if state == "open":
            shown = OPEN
        elif failures_n and failed is not None and now - failed <= self.policy.max_cooldown:
            shown = DEGRADED
        began = float(since) if since else None
        if shown == OK and failures_n and failed is not None:
            began = failed + self.policy.max_cooldown  # the failures stopped counting then
        return ModelHealth(provider=pair[0], model=pair[1], state=shown, since=began,
                           failures=failures_n if shown != OK else 0, last_error_kind=kind or "",
                           last_error=message or "", last_error_at=failed,
                           open_until=float(open_until) if shown == OPEN and open_until else None,
                           cooldown=float(cooldown) if shown == OPEN and cooldown else 0.0)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
