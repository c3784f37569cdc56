"""The one retry loop for provider calls.

The SDKs' own retries are off (max_retries=0), so every try is counted here and
the total wait is bounded in one place. Retried: 429, 5xx, timeouts, dropped
connections, malformed bodies; never 400/401/403/404 or an exhausted quota.
The wait is exponential with full jitter, but never shorter than what the
provider asked for (Retry-After, retry-after-ms, Gemini's retryDelay).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from analysis.providers.base import RATE_LIMIT, Completion, ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_total: float = 600.0  # seconds, for one call including its waits


class CallFailed(Exception):
    """A provider call that failed for good, with how many tries it took."""

    def __init__(self, error: ProviderError, *, tries: int, elapsed: float, gave_up: bool) -> None:
        self.error = error
        self.tries = tries
        self.elapsed = elapsed
        if gave_up:
            what = "rate limit" if error.kind == RATE_LIMIT else error.kind.replace("_", " ")
            label = error.message.split(" ", 1)[0]
            message = f"{label} {what}: gave up after {tries} attempts over {elapsed:.0f} s ({error.message})"
        else:
            message = error.message
        super().__init__(message)
        self.message = message


@dataclass
class CallResult:
    completion: Completion
    tries: int


def backoff_delay(attempt: int, policy: RetryPolicy, asked: float | None, rng: random.Random | None = None) -> float:
    """Delay before try `attempt + 1` (attempt counts from 1)."""
    rng = rng or random
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    delay = rng.uniform(ceiling / 2, ceiling)  # "equal jitter": spread out, never near zero
    if asked is not None:
        delay = max(delay, asked)
    return delay


def call_with_retries(
    call: Callable[[], Completion],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_try: Callable[[int, ProviderError | None], None] | None = None,
) -> CallResult:
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            completion = call()
        except ProviderError as error:
            if on_try:
                on_try(attempt, error)
            elapsed = time.monotonic() - started
            if not error.retryable:
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=False) from error
            if attempt >= policy.max_tries:
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=True) from error
            delay = backoff_delay(attempt, policy, error.retry_after)
            if elapsed + delay > policy.max_total:
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=True) from error
            sleep(delay)
            continue
        if on_try:
            on_try(attempt, None)
        return CallResult(completion=completion, tries=attempt)
