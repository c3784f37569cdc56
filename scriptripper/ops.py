"""Operator endpoints outside the API: `/healthz` and `/metrics`.

Neither takes an API token (a load balancer or Prometheus has none); `/metrics`
asks for `Authorization: Bearer $METRICS_TOKEN` when that variable is set. Both
answer in their own formats, not the API's error shape, and both answer fast
when PostgreSQL or Redis is down: that is when they matter.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from jobs.monitoring import ScriptRipperCollector, workers_alive, workers_info
from scriptripper.monitoring import redis_connection
from scriptripper.errors import error_body

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ScriptRipperCollector())


def _failure(check: str, exc: BaseException, what: str) -> dict[str, Any]:
    # The response names the exception type only: driver messages carry host names, ports and
    # user names, and this endpoint answers anyone. The full message goes to the log.
    logger.warning("healthz: %s check failed: %s: %s", check, type(exc).__name__, exc)
    return {"status": "error", "error": f"{type(exc).__name__}: {what}"}


def _elapsed_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 — any failure means "unhealthy", never a 500
        # Drop the broken connection so that the next request reconnects.
        connection.close_if_unusable_or_obsolete()
        return _failure("database", exc, "the database did not answer SELECT 1")
    return {"status": "ok", "latency_ms": _elapsed_ms(started)}


def check_redis_and_workers() -> tuple[dict[str, Any], dict[str, Any]]:
    started = time.monotonic()
    conn = redis_connection()
    try:
        try:
            conn.ping()
        except Exception as exc:  # noqa: BLE001
            failure = _failure("redis", exc, "Redis did not answer PING")
            return failure, {"status": "error", "error": "Redis is unreachable, so no worker can be seen"}
        redis_check = {"status": "ok", "latency_ms": _elapsed_ms(started)}
        try:
            workers = workers_info(conn)
        except Exception as exc:  # noqa: BLE001
            return redis_check, _failure("workers", exc, "the worker registrations could not be read")
    finally:
        conn.close()
    alive = workers_alive(workers)
    max_age = settings.HEALTHZ_WORKER_MAX_AGE_SECONDS
    if not alive:
        return redis_check, {"status": "error", "alive": 0,
                             "error": f"no worker has sent a heartbeat in the last {max_age:g} s"}
    busy_slots = sum(w["slots_busy"] for w in alive)
    return redis_check, {"status": "ok", "alive": len(alive),
                         "busy": sum(1 for w in alive if w["state"] == "busy"),
                         "slots_busy": busy_slots, "slots_free": max(sum(w["slots"] for w in alive) - busy_slots, 0)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = check_database()
    redis, workers = check_redis_and_workers()
    checks = {"database": database, "redis": redis, "workers": workers}
    healthy = all(check["status"] == "ok" for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": checks},
                        status=200 if healthy else 503)


def _metrics_authorized(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_authorized(request):
        response = JsonResponse(error_body("not_authenticated", "Send 'Authorization: Bearer <METRICS_TOKEN>'."),
                                status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # Prometheus text format 0.0.4, or OpenMetrics when the scraper asks for it.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(REGISTRY), content_type=content_type)
