"""The one retry loop for provider calls.

The SDKs' own retries are off (max_retries=0; google-genai gets no retry
options), so every try is counted here and the total wait is bounded in one
place. Retried: 429, 5xx (529 included), timeouts, dropped connections,
malformed bodies; never 400/401/403/404 nor an exhausted quota or credit (the
provider modules classify those as non-retryable kinds).

A provider or endpoint that is unreachable or overloaded for a while (dropped
connections, timeouts, 5xx, 429: a local server restarting, a provider incident)
is waited out within the task's time budget (PROVIDER_RETRY_MAX_TOTAL), however
many tries that takes; only a malformed body is also bounded by a count of tries
(PROVIDER_MAX_TRIES), since a server that answers garbage will not stop by waiting.

The wait is exponential with "equal jitter", but never shorter than what the
provider asked for (Retry-After, retry-after-ms, Gemini's RetryInfo.retryDelay).
A deadline bounds the whole task: no wait is started that would end after it,
and no try is started after it, so a task takes at most its deadline plus one
request timeout (the last try in flight).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from analysis.engine.providers import provider_label
from analysis.engine.providers.base import CONNECTION, MALFORMED, RATE_LIMIT, SERVER, TIMEOUT, Completion, ProviderError

# How a failure kind reads in "OpenAI rate limit: gave up after 6 attempts over 94 s".
_GAVE_UP_WHAT = {
    RATE_LIMIT: "rate limit",
    SERVER: "server error",
    TIMEOUT: "timeout",
    CONNECTION: "connection failure",
    MALFORMED: "malformed response",
}
# Failures that waiting fixes: retried until the time budget runs out, not after a count of tries.
WAIT_OUT_KINDS = frozenset({RATE_LIMIT, SERVER, TIMEOUT, CONNECTION})


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 6  # tries of one call answered with a malformed body (other transient kinds: max_total)
    base_delay: float = 1.0
    max_delay: float = 60.0  # cap of our own backoff (a provider's Retry-After may ask for more)
    max_total: float = 600.0  # seconds a task may spend on its calls, waits included


class CallFailed(Exception):
    """A provider call that failed for good, with how many tries it took."""

    def __init__(self, error: ProviderError, *, tries: int, elapsed: float, gave_up: bool) -> None:
        self.error = error
        self.tries = tries
        self.elapsed = elapsed
        self.gave_up = gave_up
        if gave_up:
            label = provider_label(error.provider)
            what = _GAVE_UP_WHAT.get(error.kind, error.kind.replace("_", " "))
            attempts = "1 attempt" if tries == 1 else f"{tries} attempts"
            message = (f"{label} {what}: gave up after {attempts} over {elapsed:.0f} s "
                       f"(last error: {error.message})")
        else:
            message = error.message
        super().__init__(message)
        self.message = message


@dataclass
class CallResult:
    completion: Completion
    tries: int


def backoff_delay(attempt: int, policy: RetryPolicy, asked: float | None, rng: random.Random | None = None) -> float:
    """Delay before try `attempt + 1` (attempt counts from 1): at least what the provider asked."""
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
    deadline: float | Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_try: Callable[[int, ProviderError | None], None] | None = None,
) -> CallResult:
    """Run `call` until it succeeds, fails for good, or a wait would pass `deadline` (or, for malformed
    responses only, it runs out of tries).

    `deadline` is a time.monotonic() value (the task's), or a function giving it as it stands at each failure (a
    model's fallback time slice starts at its first failure); without one, policy.max_total from now. `sleep` may
    end a wait by raising ProviderError: the call then fails with that error.
    """
    started = time.monotonic()
    if deadline is None:
        deadline = started + policy.max_total
    current_deadline = deadline if callable(deadline) else (lambda: deadline)
    attempt = 0
    while True:
        attempt += 1
        try:
            completion = call()
        except ProviderError as error:
            if not error.sent:
                attempt -= 1  # no request went out: not a try
            if on_try:
                on_try(attempt, error)
            now = time.monotonic()
            elapsed = now - started
            if not error.retryable:
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=False) from error
            if error.kind not in WAIT_OUT_KINDS and attempt >= policy.max_tries:
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=True) from error
            delay = backoff_delay(attempt, policy, error.retry_after)
            if now + delay >= current_deadline():
                # Waiting less than the provider asked would only earn another 429; give up instead.
                raise CallFailed(error, tries=attempt, elapsed=elapsed, gave_up=True) from error
            try:
                sleep(delay)
            except ProviderError as moved:
                # The wait was cut short (the model's circuit opened and the task has another model to go to).
                raise CallFailed(moved, tries=attempt, elapsed=time.monotonic() - started, gave_up=False) from moved
            continue
        if on_try:
            on_try(attempt, None)
        return CallResult(completion=completion, tries=attempt)
