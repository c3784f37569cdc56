"""OpenAI's Batch API for the emulator: files (`POST /v1/files` with purpose `batch`, `GET /v1/files/{id}`,
`GET /v1/files/{id}/content`) and batches (`POST /v1/batches`, `GET /v1/batches[/{id}]`,
`POST /v1/batches/{id}/cancel`). The input file is JSONL of `{"custom_id", "method", "url", "body"}`; the
output file holds the answered requests, the error file the failed and expired ones, as OpenAI writes them."""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
from typing import Any

from emulator.batches import BatchStore, EmulatedBatch, read_json, requested_batch, store_of
from emulator.protocol import Reply, Request, Route, json_reply

ENDPOINT = "/v1/chat/completions"


def upload(request: Request) -> Reply:
    store = store_of(request.state)
    header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + request.body)
    fields: dict[str, Any] = {}
    filename = "upload.jsonl"
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            filename = part.get_filename()
        fields[name] = part.get_payload(decode=True)
    if "file" not in fields:
        return json_reply(400, _error("Missing file", "invalid_request_error"))
    file_id = store.new_id("file-")
    store.files[file_id] = {"content": fields["file"], "filename": filename, "created_at": int(time.time()),
                            "purpose": (fields.get("purpose") or b"batch").decode()}
    return json_reply(200, _file_object(file_id, store.files[file_id]))


def get_file(request: Request) -> Reply:
    file_id = request.params["file_id"]
    entry = store_of(request.state).files.get(file_id)
    if entry is None:
        return json_reply(404, _error(f"No such File object: {file_id}", "invalid_request_error"))
    if request.params.get("content"):
        return (200, entry["content"], "application/octet-stream", {})
    return json_reply(200, _file_object(file_id, entry))


def list_batches(request: Request) -> Reply:
    store = store_of(request.state)
    limit = int((request.query.get("limit") or ["20"])[0])
    batches = [_batch_object(store, b) for b in store.listed("openai", request)][:limit]
    return json_reply(200, {"object": "list", "data": batches, "has_more": False,
                            "first_id": batches[0]["id"] if batches else None,
                            "last_id": batches[-1]["id"] if batches else None})


def one_batch(request: Request) -> Reply:
    batch_id = request.params["batch_id"]
    batch = requested_batch(request, "openai", batch_id)
    if batch is None:
        return json_reply(404, _error(f"No batch found with id '{batch_id}'.", "invalid_request_error"))
    return json_reply(200, _batch_object(store_of(request.state), batch))


def create(request: Request) -> Reply:
    store = store_of(request.state)
    body = read_json(request.body)
    if store.take("create_refusals"):
        return json_reply(429, _error("Enqueued token limit reached for this model; try again later.",
                                      "invalid_request_error", "rate_limit_exceeded"))
    entry = store.files.get(body.get("input_file_id") or "")
    if entry is None:
        return json_reply(400, _error("Invalid input_file_id", "invalid_request_error"))
    if body.get("endpoint") != ENDPOINT:
        return json_reply(400, _error(f"The emulator batches {ENDPOINT} only", "invalid_request_error"))
    requests = []
    model = None
    for line in entry["content"].decode().splitlines():
        if line.strip():
            item = json.loads(line)
            requests.append((item["custom_id"], item["body"]))
            model = model or item["body"].get("model")
    batch = store.create("openai", model, requests, prefix="batch_", key={"metadata": body.get("metadata") or {}})
    batch.extra["input_file_id"] = body["input_file_id"]
    batch.extra["completion_window"] = body.get("completion_window", "24h")
    time.sleep(float(store.config.get("create_delay") or 0))
    return json_reply(200, _batch_object(store, batch))


ROUTES = [
    Route("POST", r"/v1/files", upload),
    Route("GET", r"/v1/files/(?P<file_id>[^/]+)(?P<content>/content)?", get_file),
    Route("POST", r"/v1/batches", create),
    Route("GET", r"/v1/batches", list_batches),
    Route(None, r"/v1/batches/(?P<batch_id>[^/]+)(?P<cancel>/cancel)?", one_batch),
]


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _file_object(file_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(entry["content"]), "created_at": entry["created_at"],
            "filename": entry["filename"], "purpose": entry["purpose"], "status": "processed"}


_STATUS = {"in_progress": "in_progress", "ending": "in_progress"}


def _batch_object(store: BatchStore, batch: EmulatedBatch) -> dict[str, Any]:
    if batch.state == "ended":
        if batch.canceled:
            status = "cancelled"
        else:
            status = {"completed": "completed", "expired": "expired", "failed": "failed"}[batch.outcome]
        _write_files(store, batch)
    else:
        status = _STATUS[batch.state]
    counts = batch.counts()
    return {
        "id": batch.id, "object": "batch", "endpoint": ENDPOINT, "errors": (
            {"object": "list", "data": [{"code": "invalid_request", "message": "The batch failed validation.",
                                         "param": None, "line": None}]}
            if batch.state == "ended" and batch.outcome == "failed" and not batch.canceled else None),
        "input_file_id": batch.extra["input_file_id"], "completion_window": batch.extra["completion_window"],
        "status": status, "output_file_id": batch.extra.get("output_file_id"),
        "error_file_id": batch.extra.get("error_file_id"), "created_at": int(batch.created_at),
        "in_progress_at": int(batch.created_at), "expires_at": int(batch.created_at) + 86400,
        "completed_at": int(batch.ended_at) if status == "completed" else None,
        "expired_at": int(batch.ended_at) if status == "expired" else None,
        "cancelled_at": int(batch.ended_at) if status == "cancelled" else None,
        "failed_at": int(batch.ended_at) if status == "failed" else None,
        "request_counts": {"total": counts["total"], "completed": counts["succeeded"],
                           "failed": counts["errored"] + counts["expired"] + counts["canceled"]},
        "metadata": batch.key.get("metadata") or None,
    }


def _write_files(store: BatchStore, batch: EmulatedBatch) -> None:
    """The output and error files of an ended batch, written once."""
    if "files_written" in batch.extra:
        return
    batch.extra["files_written"] = True
    out, errors = [], []
    for custom_id, _ in batch.requests:
        kind, value = batch.results.get(custom_id, ("canceled", None))
        line = {"id": store.new_id("batch_req_"), "custom_id": custom_id}
        if kind == "succeeded":
            out.append({**line, "response": {"status_code": 200, "request_id": store.new_id("req_"), "body": value},
                        "error": None})
        elif kind == "errored":
            status, body = value
            errors.append({**line, "response": {"status_code": status, "request_id": store.new_id("req_"),
                                                "body": body}, "error": None})
        else:
            code = "batch_expired" if kind == "expired" else "batch_cancelled"
            errors.append({**line, "response": None, "error": {
                "code": code, "message": f"This request could not be executed before the batch {kind}."}})
    for key, lines in (("output_file_id", out), ("error_file_id", errors)):
        if lines:
            file_id = store.new_id("file-")
            store.files[file_id] = {"content": "".join(json.dumps(x) + "\n" for x in lines).encode(),
                                    "filename": f"{batch.id}_{key}.jsonl", "created_at": int(time.time()),
                                    "purpose": "batch_output"}
            batch.extra[key] = file_id
