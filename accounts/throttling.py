"""Per-user, per-plan request throttles, counted in Redis so every API process shares them.

Two DRF throttles, both in DEFAULT_THROTTLE_CLASSES:
- `ApiRateThrottle`: every authenticated API request (THROTTLE_RATES[plan]["api"]);
- `SubmitRateThrottle`: job submissions only, i.e. POSTs to views that declare
  `throttle_scope = "submit"` (THROTTLE_RATES[plan]["submit"]).

Counting is a sliding window, estimated from two fixed windows (the way large
rate limiters do it): an atomic INCR per (user, scope, window), and the previous
window's count weighted by how much of it still lies within the last `period`
seconds. A fixed window alone would let a client fit twice the rate across a
window boundary; DRF's SimpleRateThrottle keeps a timestamp list with a
read-then-write that lets concurrent processes each see the same count, which is
exactly the case a shared limit must get right. Refused requests count too, so a
client that keeps hammering stays refused.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)


def retry_after(*, limit: int, period: float, count: int, previous: int, into_window: float) -> float:
    """Seconds until one more request fits the sliding estimate, if the client sends nothing meanwhile."""
    if count + 1 <= limit:
        # This window has room: wait for enough of the previous one to slide out.
        fits_at = period * (1 - (limit - count - 1) / previous) if previous else 0.0
    else:
        # This window is full: in the next one, its count weighs in as the previous window's.
        fits_at = period + period * max(0.0, 1 - (limit - 1) / count)
    return max(1.0, math.ceil(fits_at - into_window))


class ApiRateThrottle(BaseThrottle):
    scope = "api"

    def __init__(self) -> None:
        self._wait: float | None = None

    def applies(self, request, view) -> bool:
        return True

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or getattr(user, "unlimited", False):
            return True
        if not self.applies(request, view):
            return True
        rates = settings.THROTTLE_RATES.get(user.plan) or settings.THROTTLE_RATES["free"]
        rate = rates.get(self.scope)
        if rate is None:  # "none": no limit for this plan and scope
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        key = f"throttle:{self.scope}:{user.pk}:{period}:{window}"
        try:
            # Kept two periods: the next window still weighs this one's count.
            cache.add(key, 0, timeout=2 * period + 1)
            count = cache.incr(key)
            previous = cache.get(f"throttle:{self.scope}:{user.pk}:{period}:{window - 1}", 0)
        except ValueError:  # the key expired between add and incr: this is the window's first request
            return True
        except RedisError as exc:
            # Fail open: Redis being down must not take the read API down with it (jobs
            # submitted meanwhile stay queued in PostgreSQL and are enqueued when it is back).
            logger.warning("throttle counter unavailable (%s); request allowed", type(exc).__name__)
            return True
        into_window = now - window * period
        if count + previous * (1 - into_window / period) > limit:
            self._wait = retry_after(limit=limit, period=period, count=count, previous=previous,
                                     into_window=into_window)
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


class SubmitRateThrottle(ApiRateThrottle):
    scope = "submit"

    def applies(self, request, view) -> bool:
        return request.method == "POST" and getattr(view, "throttle_scope", None) == "submit"
