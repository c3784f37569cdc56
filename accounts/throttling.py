"""Per-user, per-plan request throttles, counted in Redis so every API process shares them.

Two DRF throttles, both in DEFAULT_THROTTLE_CLASSES:
- `ApiRateThrottle`: every authenticated API request (THROTTLE_RATES[plan]["api"]);
- `SubmitRateThrottle`: job submissions only, i.e. POSTs to views that declare
  `throttle_scope = "submit"` (THROTTLE_RATES[plan]["submit"]).

Counting is a fixed window with an atomic INCR per (user, scope, window): DRF's
SimpleRateThrottle keeps a timestamp list with a read-then-write that lets
concurrent processes each see the same count, which is exactly the case a
shared limit must get right. The price of a fixed window is that a client can
fit up to twice the rate across a window boundary.
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
            cache.add(key, 0, timeout=period + 1)
            count = cache.incr(key)
        except ValueError:  # the key expired between add and incr: this is the window's first request
            return True
        except RedisError as exc:
            # Fail open: Redis being down must not take the read API down with it (jobs
            # submitted meanwhile stay queued in PostgreSQL and are enqueued when it is back).
            logger.warning("throttle counter unavailable (%s); request allowed", type(exc).__name__)
            return True
        if count > limit:
            self._wait = max(1.0, math.ceil((window + 1) * period - now))
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


class SubmitRateThrottle(ApiRateThrottle):
    scope = "submit"

    def applies(self, request, view) -> bool:
        return request.method == "POST" and getattr(view, "throttle_scope", None) == "submit"
