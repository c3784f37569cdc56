"""The providers' batch protocols and the flex tier, for the emulator (the protocols: batch_openai.py,
batch_anthropic.py, batch_gemini.py; this module: what they share, the flex tier and the control endpoint).

A batch holds the request bodies it was created with; it completes `completion_delay` seconds after its
creation, when it is first read after that: every request is answered exactly as the synchronous endpoint
would answer it (the same handler code, so faults that match a prompt fail that request alone: partial
failure), and recorded in the request log with `"batch": <id>`. What a batch does is fixed at its creation
from the configuration then in force:

- `completion_delay`: seconds until it ends (0: at the first read);
- `outcome`: `completed`, `expired` (the first `expire_answered` requests answered, the rest expired) or
  `failed` (the whole batch fails, no results);
- `create_refusals`: that many create calls refused with 429 first (capacity), -1 for all;
- `create_delay`: seconds the create call waits after creating the batch and before answering (a client
  killed meanwhile has a batch it never heard of);
- `flex_refusals`: that many flex-tier requests (OpenAI `service_tier: flex`, Gemini `serviceTier: flex`)
  refused with 429 capacity errors before they are served, -1 for all.

Control: `GET /_emulator/batches` lists the batches (id, provider, state, counts, key fields, whether it was
canceled); `POST /_emulator/batches` with a JSON object changes the configuration (`"complete_now": [ids]`
or `"all"` ends those batches at their next read, whatever their delay). The emulator's reset
(`POST /_emulator/reset`) forgets every batch and the configuration.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.protocol import Reply, Request, Route, json_reply

BATCH_DEFAULTS: dict[str, Any] = {
    "completion_delay": 0.0,
    "outcome": "completed",
    "expire_answered": 0,
    "create_refusals": 0,
    "create_delay": 0.0,
    "flex_refusals": 0,
}
OUTCOMES = ("completed", "expired", "failed")


@dataclass
class EmulatedBatch:
    id: str
    provider: str
    model: str | None
    requests: list[tuple[str, dict[str, Any]]]  # (custom id, request body)
    created_at: float
    complete_at: float
    outcome: str
    expire_answered: int
    key: dict[str, Any] = field(default_factory=dict)  # metadata (OpenAI), displayName (Gemini)
    state: str = "in_progress"  # in_progress, ended
    canceled: bool = False
    ended_at: float | None = None
    # custom id -> ("succeeded", response body) | ("errored", (status, error body)) | ("expired"|"canceled", None)
    results: dict[str, tuple[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # per-protocol fields (OpenAI's file ids)

    def counts(self) -> dict[str, int]:
        kinds = [kind for kind, _ in self.results.values()]
        return {"total": len(self.requests), "succeeded": kinds.count("succeeded"), "errored": kinds.count("errored"),
                "expired": kinds.count("expired"), "canceled": kinds.count("canceled"),
                "processing": len(self.requests) - len(kinds)}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "provider": self.provider, "model": self.model, "state": self.state,
                "outcome": self.outcome, "canceled": self.canceled, "key": self.key, "counts": self.counts(),
                "custom_ids": [custom_id for custom_id, _ in self.requests]}


class BatchStore:
    """The batches and files of one emulator, reset with it."""

    def __init__(self, state: Any) -> None:
        self.lock = threading.RLock()
        self._state_config = state.config  # EmulatorState.reset() replaces this dict: then we reset too
        self.config = dict(BATCH_DEFAULTS)
        self.batches: dict[str, EmulatedBatch] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):04d}{uuid.uuid4().hex[:12]}"

    def configure(self, updates: dict[str, Any]) -> dict[str, Any]:
        unknown = set(updates) - set(BATCH_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown batch config keys {sorted(unknown)}; known: {sorted(BATCH_DEFAULTS)}")
        if "outcome" in updates and updates["outcome"] not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        with self.lock:
            self.config.update(updates)
            return dict(self.config)

    def take(self, key: str) -> bool:
        """Count down a refusal counter (`create_refusals`, `flex_refusals`): True while refusals are left."""
        with self.lock:
            left = int(self.config.get(key) or 0)
            if left == 0:
                return False
            if left > 0:
                self.config[key] = left - 1
            return True

    def create(self, provider: str, model: str | None, requests: list[tuple[str, dict[str, Any]]], *,
               prefix: str, key: dict[str, Any] | None = None) -> EmulatedBatch:
        now = time.time()
        with self.lock:
            batch = EmulatedBatch(id=self.new_id(prefix), provider=provider, model=model, requests=requests,
                                  created_at=now, complete_at=now + float(self.config["completion_delay"] or 0),
                                  outcome=self.config["outcome"], expire_answered=int(self.config["expire_answered"]),
                                  key=key or {})
            self.batches[batch.id] = batch
        return batch

    def get(self, batch_id: str, request: Request) -> EmulatedBatch | None:
        with self.lock:
            batch = self.batches.get(batch_id)
        if batch is not None:
            self.refresh(batch, request)
        return batch

    def listed(self, provider: str, request: Request) -> list[EmulatedBatch]:
        with self.lock:
            batches = [b for b in self.batches.values() if b.provider == provider]
        for batch in batches:
            self.refresh(batch, request)
        return sorted(batches, key=lambda b: b.created_at, reverse=True)  # newest first, as the providers list

    def cancel(self, batch: EmulatedBatch) -> None:
        with self.lock:
            if batch.state == "ended":
                return
            batch.canceled = True
            batch.state = "ended"
            batch.ended_at = time.time()
            for custom_id, _ in batch.requests:
                batch.results.setdefault(custom_id, ("canceled", None))

    def refresh(self, batch: EmulatedBatch, request: Request) -> None:
        """End the batch when its time has come: answer its requests as its outcome says."""
        with self.lock:
            if batch.state != "in_progress" or time.time() < batch.complete_at:
                return
            batch.state = "ending"
        results: dict[str, tuple[str, Any]] = {}
        if batch.outcome != "failed":
            for index, (custom_id, body) in enumerate(batch.requests):
                if batch.outcome == "expired" and index >= batch.expire_answered:
                    results[custom_id] = ("expired", None)
                    continue
                status, answer = answer_one(request.state, batch.provider, body, batch.model, batch_id=batch.id)
                results[custom_id] = ("succeeded", answer) if status == 200 else ("errored", (status, answer))
        with self.lock:
            batch.results = results
            batch.state = "ended"
            batch.ended_at = time.time()


_stores_lock = threading.Lock()


def store_of(state: Any) -> BatchStore:
    """The batch store of this emulator's state (a new one after the emulator's reset)."""
    with _stores_lock:
        store = getattr(state, "batch_store", None)
        if store is None or store._state_config is not state.config:
            store = BatchStore(state)
            state.batch_store = store
        return store


def requested_batch(request: Request, provider: str, batch_id: str) -> EmulatedBatch | None:
    """The batch of `provider` that a request to one batch's URL names, up to date; canceled first when the URL is
    the batch's cancel URL. None when the provider has no such batch (each protocol answers its own 404)."""
    store = store_of(request.state)
    batch = store.get(batch_id, request)
    if batch is None or batch.provider != provider:
        return None
    if request.params.get("cancel"):
        store.cancel(batch)
    return batch


def protocol_of(provider: str) -> Any:
    from emulator.anthropic_protocol import ANTHROPIC
    from emulator.gemini_protocol import GEMINI
    from emulator.openai_protocol import OPENAI

    return {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}[provider]


def answer_one(state: Any, provider: str, body: dict[str, Any], model: str | None, *,
               batch_id: str) -> tuple[int, Any]:
    """One request of a batch answered by the emulator's own generate path (faults, usage, caching), and
    recorded in the request log with its batch id."""
    from emulator.protocol import _answer

    inner = Request(method="POST", path=f"batch:{batch_id}", query={}, headers={}, body=json.dumps(body).encode(),
                    state=state)
    rec: dict[str, Any] = {"provider": provider, "model": model, "path": inner.path, "headers": {},
                           "api_key_present": True, "body": None, "prompt_tokens": None, "status": None,
                           "time": time.time(), "batch": batch_id}
    state.enter()
    try:
        reply = _answer(protocol_of(provider), inner, model, rec)
    finally:
        state.leave()
        state.record(rec)
    if reply is None:  # a dropped connection has no place in a batch: a server error
        return 500, {"error": {"message": "connection dropped", "type": "server_error"}}
    status, payload, _content_type, _headers = reply
    try:
        return status, json.loads(payload)
    except ValueError:
        return 500, {"error": {"message": "malformed response", "type": "server_error"}}


def iso_time(moment: float | None) -> str | None:
    """A time.time() value as the RFC 3339 UTC string (`...Z`) that Anthropic's and Gemini's batch objects carry."""
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat().replace("+00:00", "Z")


def read_json(raw: bytes) -> Any:
    return json.loads(raw or b"{}")


# --- the control endpoint and the flex tier's refusals ----------------------------------------------

def control(request: Request) -> Reply:
    store = store_of(request.state)
    if request.method == "POST":
        body = read_json(request.body)
        ending = body.pop("complete_now", None)  # batch ids (or "all") to end at their next read
        with store.lock:
            for batch in store.batches.values():
                if ending == "all" or (isinstance(ending, list) and batch.id in ending):
                    batch.complete_at = 0.0
        try:
            return json_reply(200, {"config": store.configure(body)})
        except (ValueError, TypeError) as exc:
            return json_reply(400, {"error": str(exc)})
    with store.lock:
        batches = list(store.batches.values())
    return json_reply(200, {"config": dict(store.config), "batches": [b.summary() for b in batches]})


def _flex_tier(request: Request, provider: str) -> bool:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False  # the protocol's own row answers what is not a JSON object
    tier = body.get("service_tier") if provider == "openai" else body.get("serviceTier")
    return str(tier or "").lower() == "flex"


def _flex_refused(provider: str) -> Any:
    def when(request: Request) -> bool:
        return _flex_tier(request, provider) and store_of(request.state).take("flex_refusals")

    return when


def flex_refusal(provider: str) -> Any:
    """A flex-tier request refused for capacity (429), while `flex_refusals` lasts; recorded like any request."""
    def handler(request: Request) -> Reply:
        body = read_json(request.body)
        request.state.record({"provider": provider, "model": body.get("model"), "path": request.path, "headers": {},
                              "api_key_present": True, "body": body, "prompt_tokens": None, "status": 429,
                              "time": time.time(), "flex_refused": True})
        if provider == "openai":
            return json_reply(429, {"error": {
                "message": "Flex capacity is unavailable right now; retry later or use the default service tier.",
                "type": "resource_unavailable", "param": None, "code": "resource_unavailable"}})
        return json_reply(429, protocol_of("gemini").error_body(429, message="Flex capacity exhausted; retry later."))

    return handler


def routes() -> list[Route]:
    """The batch protocols' rows of the server's table, the flex refusals and the batch control first."""
    from emulator import batch_anthropic, batch_gemini, batch_openai

    return [
        Route(None, r"/_emulator/batches", control),
        Route("POST", r"/v1/chat/completions", flex_refusal("openai"), when=_flex_refused("openai")),
        Route("POST", r"/v1(?:beta)?/models/(?P<model>.*):generateContent", flex_refusal("gemini"),
              when=_flex_refused("gemini")),
        *batch_openai.ROUTES, *batch_anthropic.ROUTES, *batch_gemini.ROUTES,
    ]


# --- for tests and benchmarks: the control endpoint over HTTP ------------------------------------------

def configure_batches(url: str, **config: Any) -> dict[str, Any]:
    request = urllib.request.Request(f"{url.rstrip('/')}/_emulator/batches", data=json.dumps(config).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["config"]


def complete_batches(url: str, ids: list[str] | str = "all") -> None:
    """End these batches (default: all) at their next read, whatever delay they were created with."""
    configure_batches(url, complete_now=ids)


def list_batches(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url.rstrip('/')}/_emulator/batches", timeout=10) as response:
        return json.loads(response.read())["batches"]
