"""Gemini's Batch Mode for the emulator (inline requests): `POST /{version}/models/{model}:batchGenerateContent`
(`{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}}}}`),
`GET /{version}/batches[/{id}]`, `POST /{version}/batches/{id}:cancel`. Batches are long-running operations
whose `metadata` carries the state (`BATCH_STATE_*`) and, once ended, the inline responses in request order,
each with the `metadata` it was sent with."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from emulator.batches import EmulatedBatch, iso_time, read_json, requested_batch, store_of
from emulator.protocol import Reply, Request, Route, json_reply

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"


def _not_found(name: str) -> Reply:
    return json_reply(404, {"error": {"code": 404, "message": f"Batch {name} not found.", "status": "NOT_FOUND"}})


def create(request: Request) -> Reply:
    store = store_of(request.state)
    if store.take("create_refusals"):
        return json_reply(429, {"error": {"code": 429, "message": "Batch quota exceeded; try again later.",
                                          "status": "RESOURCE_EXHAUSTED"}})
    batch_body = read_json(request.body).get("batch") or {}
    inline = (((batch_body.get("inputConfig") or {}).get("requests") or {}).get("requests")) or []
    if not inline:
        return json_reply(400, {"error": {"code": 400, "message": "inputConfig.requests is required",
                                          "status": "INVALID_ARGUMENT"}})
    model = urllib.parse.unquote(request.params["model"]).removeprefix("models/")
    # The custom id of an inline request is its metadata (Gemini has no custom_id field); kept whole.
    requests = [(item.get("metadata") or {}, item.get("request") or {}) for item in inline]
    batch = store.create("gemini", model, [(str(index), body) for index, (_, body) in enumerate(requests)],
                         prefix="", key={"displayName": batch_body.get("displayName") or ""})
    batch.extra["metadata"] = [metadata for metadata, _ in requests]
    time.sleep(float(store.config.get("create_delay") or 0))
    return json_reply(200, _operation(batch))


def list_batches(request: Request) -> Reply:
    batches = [_operation(b) for b in store_of(request.state).listed("gemini", request)]
    return json_reply(200, {"operations": batches[:int((request.query.get("pageSize") or ["50"])[0])]})


def one_batch(request: Request) -> Reply:
    batch = requested_batch(request, "gemini", request.params["name"])
    if batch is None:
        return _not_found(request.params["name"])
    if request.params.get("cancel") or request.method == "DELETE":
        return json_reply(200, {})
    return json_reply(200, _operation(batch))


_VERSION = r"/v1(?:beta)?"
ROUTES = [
    Route("POST", _VERSION + r"/models/(?P<model>.*):batchGenerateContent", create),
    Route("GET", _VERSION + r"/batches", list_batches),
    Route(None, _VERSION + r"/batches/(?P<name>[^/:]+)(?P<cancel>:cancel)?", one_batch),
]


def _operation(batch: EmulatedBatch) -> dict[str, Any]:
    ended = batch.state == "ended"
    if not ended:
        state = "BATCH_STATE_RUNNING" if batch.state == "ending" else "BATCH_STATE_PENDING"
    elif batch.canceled:
        state = "BATCH_STATE_CANCELLED"
    else:
        state = {"completed": "BATCH_STATE_SUCCEEDED", "expired": "BATCH_STATE_EXPIRED",
                 "failed": "BATCH_STATE_FAILED"}[batch.outcome]
    counts = batch.counts()
    metadata: dict[str, Any] = {
        "@type": _TYPE, "model": f"models/{batch.model}", "displayName": batch.key.get("displayName") or "",
        "state": state, "createTime": iso_time(batch.created_at), "updateTime": iso_time(batch.ended_at or batch.created_at),
        "batchStats": {"requestCount": str(counts["total"]), "successfulRequestCount": str(counts["succeeded"]),
                       "failedRequestCount": str(counts["errored"]),
                       "pendingRequestCount": str(counts["processing"])},
        "name": f"batches/{batch.id}",
    }
    if ended:
        metadata["endTime"] = iso_time(batch.ended_at)
    if ended and batch.results and not batch.canceled and batch.outcome != "failed":
        responses = []
        for (custom_id, _), sent in zip(batch.requests, batch.extra["metadata"]):
            kind, value = batch.results[custom_id]
            if kind == "succeeded":
                responses.append({"response": value, "metadata": sent})
            elif kind == "errored":
                status, body = value
                error = (body or {}).get("error") or {}
                responses.append({"error": {"code": error.get("code", status), "message": error.get("message", ""),
                                            "status": error.get("status", "")}, "metadata": sent})
            # expired requests have no entry: the client finds them missing
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
    operation: dict[str, Any] = {"name": f"batches/{batch.id}", "metadata": metadata, "done": ended}
    if ended and batch.outcome == "failed" and not batch.canceled:
        operation["error"] = {"code": 3, "message": "The batch failed."}
    return operation
