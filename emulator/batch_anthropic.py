"""Anthropic's Message Batches for the emulator: `POST /v1/messages/batches` (`{"requests": [{"custom_id",
"params"}]}`), `GET /v1/messages/batches[/{id}]`, `POST /v1/messages/batches/{id}/cancel` and the results
JSONL at `GET /v1/messages/batches/{id}/results` (unordered, as Anthropic warns: the emulator reverses them).
A message batch takes no metadata: nothing but the custom ids carries the client's keys."""

from __future__ import annotations

import json
import time
from typing import Any

from emulator.batches import EmulatedBatch, iso_time, read_json, requested_batch, store_of
from emulator.protocol import Reply, Request, Route, json_reply

PREFIX = "/v1/messages/batches"


def _not_found(batch_id: str) -> Reply:
    return json_reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"No batch {batch_id}"}})


def create(request: Request) -> Reply:
    store = store_of(request.state)
    body = read_json(request.body)
    if store.take("create_refusals"):
        return json_reply(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                           "message": "Too many batch requests in progress."}})
    requests = [(item["custom_id"], item["params"]) for item in body.get("requests") or []]
    if not requests:
        return json_reply(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                           "message": "requests: at least one is required"}})
    batch = store.create("anthropic", requests[0][1].get("model"), requests, prefix="msgbatch_")
    time.sleep(float(store.config.get("create_delay") or 0))
    return json_reply(200, _batch_object(request, batch))


def list_batches(request: Request) -> Reply:
    batches = [_batch_object(request, b) for b in store_of(request.state).listed("anthropic", request)]
    batches = batches[:int((request.query.get("limit") or ["20"])[0])]
    return json_reply(200, {"data": batches, "has_more": False, "first_id": batches[0]["id"] if batches else None,
                            "last_id": batches[-1]["id"] if batches else None})


def one_batch(request: Request) -> Reply:
    batch = requested_batch(request, "anthropic", request.params["batch_id"])
    if batch is None:
        return _not_found(request.params["batch_id"])
    return json_reply(200, _batch_object(request, batch))


def results(request: Request) -> Reply:
    batch = requested_batch(request, "anthropic", request.params["batch_id"])
    if batch is None:
        return _not_found(request.params["batch_id"])
    if batch.state != "ended":
        return json_reply(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                           "message": "The batch is still processing."}})
    lines = [_result_line(custom_id, *batch.results.get(custom_id, ("canceled", None)))
             for custom_id, _ in reversed(batch.requests)]
    return (200, "".join(json.dumps(line) + "\n" for line in lines).encode(), "application/binary", {})


ROUTES = [
    Route("POST", PREFIX, create),
    Route("GET", PREFIX, list_batches),
    Route("GET", PREFIX + r"/(?P<batch_id>[^/]+)/results", results),
    Route(None, PREFIX + r"/(?P<batch_id>[^/]+)(?P<cancel>/cancel)?", one_batch),
]


def _batch_object(request: Request, batch: EmulatedBatch) -> dict[str, Any]:
    counts = batch.counts()
    ended = batch.state == "ended"
    host = request.headers.get("host", "127.0.0.1")
    return {
        "id": batch.id, "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": {"processing": counts["processing"], "succeeded": counts["succeeded"],
                           "errored": counts["errored"], "canceled": counts["canceled"], "expired": counts["expired"]},
        "ended_at": iso_time(batch.ended_at), "created_at": iso_time(batch.created_at),
        "expires_at": iso_time(batch.created_at + 86400), "archived_at": None,
        "cancel_initiated_at": iso_time(batch.ended_at) if batch.canceled else None,
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
