"""Anthropic's Message Batches for the emulator: `POST /v1/messages/batches` (`{"requests": [{"custom_id",
"params"}]}`), `GET /v1/messages/batches[/{id}]`, `POST /v1/messages/batches/{id}/cancel` and the results
JSONL at `GET /v1/messages/batches/{id}/results` (unordered, as Anthropic warns: the emulator reverses them).
A message batch takes no metadata: nothing but the custom ids carries the client's keys."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from emulator.batches import BatchStore, EmulatedBatch, read_json

PREFIX = "/v1/messages/batches"


def route(handler: Any, store: BatchStore, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> bool:
    if not path.startswith(PREFIX):
        return False
    rest = path[len(PREFIX):].strip("/")
    if method == "POST" and not rest:
        _create(handler, store, read_json(raw))
        return True
    if method == "GET" and not rest:
        batches = [_batch_object(handler, b) for b in store.listed("anthropic", handler)]
        limit = int((query.get("limit") or ["20"])[0])
        batches = batches[:limit]
        handler._send_json(200, {"data": batches, "has_more": False,
                                 "first_id": batches[0]["id"] if batches else None,
                                 "last_id": batches[-1]["id"] if batches else None})
        return True
    batch_id, _, action = rest.partition("/")
    batch = store.get(batch_id, handler)
    if batch is None or batch.provider != "anthropic":
        handler._send_json(404, {"type": "error", "error": {"type": "not_found_error",
                                                            "message": f"No batch {batch_id}"}})
        return True
    if method == "POST" and action == "cancel":
        store.cancel(batch, handler)
        handler._send_json(200, _batch_object(handler, batch))
    elif method == "GET" and action == "results":
        if batch.state != "ended":
            handler._send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                "message": "The batch is still processing."}})
        else:
            lines = [_result_line(custom_id, *batch.results.get(custom_id, ("canceled", None)))
                     for custom_id, _ in reversed(batch.requests)]
            handler._send(200, "".join(json.dumps(line) + "\n" for line in lines).encode(),
                          content_type="application/binary")
    elif method == "GET" and not action:
        handler._send_json(200, _batch_object(handler, batch))
    else:
        return False
    return True


def _create(handler: Any, store: BatchStore, body: dict[str, Any]) -> None:
    if store.take("create_refusals"):
        handler._send_json(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                            "message": "Too many batch requests in progress."}})
        return
    requests = [(item["custom_id"], item["params"]) for item in body.get("requests") or []]
    if not requests:
        handler._send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "requests: at least one is required"}})
        return
    batch = store.create("anthropic", requests[0][1].get("model"), requests, prefix="msgbatch_")
    time.sleep(float(store.config.get("create_delay") or 0))
    handler._send_json(200, _batch_object(handler, batch))


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


def _batch_object(handler: Any, batch: EmulatedBatch) -> dict[str, Any]:
    counts = batch.counts()
    ended = batch.state == "ended"
    host = handler.headers.get("host", "127.0.0.1")
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {"processing": counts["processing"], "succeeded": counts["succeeded"],
                           "errored": counts["errored"], "canceled": counts["canceled"], "expired": counts["expired"]},
        "ended_at": _iso(batch.ended_at), "created_at": _iso(batch.created_at),
        "expires_at": _iso(batch.created_at + 86400), "archived_at": None,
        "cancel_initiated_at": _iso(batch.ended_at) if batch.canceled else None,
        "results_url": f"http://{host}{PREFIX}/{batch.id}/results" if ended else None,
    }


def _result_line(custom_id: str, kind: str, value: Any) -> dict[str, Any]:
    if kind == "succeeded":
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": value}}
    if kind == "errored":
        _status, body = value
        error = body if isinstance(body, dict) and body.get("type") == "error" else {
            "type": "error", "error": {"type": "api_error", "message": json.dumps(body)[:200]}}
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
    return {"custom_id": custom_id, "result": {"type": kind}}
