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

from emulator.batches import BatchStore, EmulatedBatch, read_json

ENDPOINT = "/v1/chat/completions"


def route(handler: Any, store: BatchStore, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> bool:
    if method == "POST" and path == "/v1/files":
        _upload(handler, store, raw)
    elif method == "GET" and path.startswith("/v1/files/"):
        file_id, _, rest = path[len("/v1/files/"):].partition("/")
        entry = store.files.get(file_id)
        if entry is None:
            handler._send_json(404, _error(f"No such File object: {file_id}", "invalid_request_error"))
        elif rest == "content":
            handler._send(200, entry["content"], content_type="application/octet-stream")
        else:
            handler._send_json(200, _file_object(file_id, entry))
    elif method == "POST" and path == "/v1/batches":
        _create(handler, store, read_json(raw))
    elif method == "GET" and path == "/v1/batches":
        limit = int((query.get("limit") or ["20"])[0])
        batches = [_batch_object(store, b) for b in store.listed("openai", handler)][:limit]
        handler._send_json(200, {"object": "list", "data": batches, "has_more": False,
                                 "first_id": batches[0]["id"] if batches else None,
                                 "last_id": batches[-1]["id"] if batches else None})
    elif path.startswith("/v1/batches/"):
        batch_id, _, action = path[len("/v1/batches/"):].partition("/")
        batch = store.get(batch_id, handler)
        if batch is None or batch.provider != "openai":
            handler._send_json(404, _error(f"No batch found with id '{batch_id}'.", "invalid_request_error"))
        elif method == "POST" and action == "cancel":
            store.cancel(batch, handler)
            handler._send_json(200, _batch_object(store, batch))
        elif method == "GET" and not action:
            handler._send_json(200, _batch_object(store, batch))
        else:
            return False
    else:
        return False
    return True


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _upload(handler: Any, store: BatchStore, raw: bytes) -> None:
    header = f"Content-Type: {handler.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
    fields: dict[str, Any] = {}
    filename = "upload.jsonl"
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            filename = part.get_filename()
        fields[name] = part.get_payload(decode=True)
    if "file" not in fields:
        handler._send_json(400, _error("Missing file", "invalid_request_error"))
        return
    file_id = store.new_id("file-")
    store.files[file_id] = {"content": fields["file"], "filename": filename, "created_at": int(time.time()),
                            "purpose": (fields.get("purpose") or b"batch").decode()}
    handler._send_json(200, _file_object(file_id, store.files[file_id]))


def _file_object(file_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": len(entry["content"]), "created_at": entry["created_at"],
            "filename": entry["filename"], "purpose": entry["purpose"], "status": "processed"}


def _create(handler: Any, store: BatchStore, body: dict[str, Any]) -> None:
    if store.take("create_refusals"):
        handler._send_json(429, _error("Enqueued token limit reached for this model; try again later.",
                                       "invalid_request_error", "rate_limit_exceeded"))
        return
    entry = store.files.get(body.get("input_file_id") or "")
    if entry is None:
        handler._send_json(400, _error("Invalid input_file_id", "invalid_request_error"))
        return
    if body.get("endpoint") != ENDPOINT:
        handler._send_json(400, _error(f"The emulator batches {ENDPOINT} only", "invalid_request_error"))
        return
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
    handler._send_json(200, _batch_object(store, batch))


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
