"""Gemini's Batch Mode for the emulator (inline requests): `POST /{version}/models/{model}:batchGenerateContent`
(`{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request", "metadata"}]}}}}`),
`GET /{version}/batches[/{id}]`, `POST /{version}/batches/{id}:cancel`. Batches are long-running operations
whose `metadata` carries the state (`BATCH_STATE_*`) and, once ended, the inline responses in request order,
each with the `metadata` it was sent with."""

from __future__ import annotations

import datetime as dt
import time
import urllib.parse
from typing import Any

from emulator.batches import BatchStore, EmulatedBatch, read_json

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"


def route(handler: Any, store: BatchStore, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> bool:
    version, _, rest = path.lstrip("/").partition("/")
    if version not in ("v1", "v1beta"):
        return False
    if method == "POST" and rest.startswith("models/") and rest.endswith(":batchGenerateContent"):
        model = urllib.parse.unquote(rest[len("models/"):-len(":batchGenerateContent")])
        _create(handler, store, model, read_json(raw))
        return True
    if method == "GET" and rest == "batches":
        batches = [_operation(b) for b in store.listed("gemini", handler)]
        size = int((query.get("pageSize") or ["50"])[0])
        handler._send_json(200, {"operations": batches[:size]})
        return True
    if not rest.startswith("batches/"):
        return False
    name, _, action = rest[len("batches/"):].partition(":")
    batch = store.get(name, handler)
    if batch is None or batch.provider != "gemini":
        handler._send_json(404, {"error": {"code": 404, "message": f"Batch {name} not found.", "status": "NOT_FOUND"}})
    elif method == "POST" and action == "cancel":
        store.cancel(batch, handler)
        handler._send_json(200, {})
    elif method == "GET" and not action:
        handler._send_json(200, _operation(batch))
    elif method == "DELETE" and not action:
        handler._send_json(200, {})
    else:
        return False
    return True


def _create(handler: Any, store: BatchStore, model: str, body: dict[str, Any]) -> None:
    if store.take("create_refusals"):
        handler._send_json(429, {"error": {"code": 429, "message": "Batch quota exceeded; try again later.",
                                           "status": "RESOURCE_EXHAUSTED"}})
        return
    batch_body = body.get("batch") or {}
    inline = (((batch_body.get("inputConfig") or {}).get("requests") or {}).get("requests")) or []
    if not inline:
        handler._send_json(400, {"error": {"code": 400, "message": "inputConfig.requests is required",
                                           "status": "INVALID_ARGUMENT"}})
        return
    model = model.removeprefix("models/")
    # The custom id of an inline request is its metadata (Gemini has no custom_id field); kept whole.
    requests = [(item.get("metadata") or {}, item.get("request") or {}) for item in inline]
    batch = store.create("gemini", model, [(str(index), request) for index, (_, request) in enumerate(requests)],
                         prefix="", key={"displayName": batch_body.get("displayName") or ""})
    batch.extra["metadata"] = [metadata for metadata, _ in requests]
    time.sleep(float(store.config.get("create_delay") or 0))
    handler._send_json(200, _operation(batch))


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


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
        "state": state, "createTime": _iso(batch.created_at), "updateTime": _iso(batch.ended_at or batch.created_at),
        "batchStats": {"requestCount": str(counts["total"]), "successfulRequestCount": str(counts["succeeded"]),
                       "failedRequestCount": str(counts["errored"]),
                       "pendingRequestCount": str(counts["processing"])},
        "name": f"batches/{batch.id}",
    }
    if ended:
        metadata["endTime"] = _iso(batch.ended_at)
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
