"""What the wire-protocol modules plug into: the request a route handler gets, the route table's rows,
the Protocol interface, and the one generate path they share (record, latency, faults, context cap,
answer, usage), so that the three protocols differ only in their shapes.

A protocol module defines a ``Protocol`` subclass and ``ROUTES``; ``emulator/server.py`` lists each
module's ``ROUTES`` in its table, one line a module.
"""

from __future__ import annotations

import functools
import json
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from emulator import structured
from emulator.caching import PrefixCache, prefix_keys, resolve_amount
from emulator.prompt import BadRequest, Prompt, Usage, compose_answer, estimate_tokens
from emulator.state import EmulatorState, redact_headers


@functools.cache
def _errors_file() -> dict[str, Any]:
    with Path(__file__).with_name("errors.toml").open("rb") as f:
        return tomllib.load(f)


def error_table(provider: str) -> dict[int, dict[str, str]]:
    """The provider's section of errors.toml: what it answers with each HTTP status."""
    return {int(status): entry for status, entry in _errors_file()[provider].items()}


# status, payload, content type, extra headers
Reply = tuple[int, bytes, str, dict[str, str]]


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    return (status, json.dumps(obj, separators=(",", ":")).encode(), "application/json",
            headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    state: EmulatorState
    params: dict[str, str] = field(default_factory=dict)  # the route pattern's named groups
    log: Callable[..., None] = lambda *args: None  # the handler's log_message


# A handler answers a request; None drops the connection without an answer (fault kind "drop").
Handler = Callable[[Request], Reply | None]


@dataclass(frozen=True)
class Route:
    """One row of the server's table: the first row whose method, pattern (matched against the whole
    path) and guard fit handles the request; ``fallback`` rows are tried after all the others."""

    method: str | None  # None: any method
    pattern: str
    handler: Handler
    when: Callable[[Request], bool] | None = None  # e.g. a header that tells two protocols apart
    fallback: bool = False

    def match(self, request: Request) -> dict[str, str] | None:
        if self.method is not None and self.method != request.method:
            return None
        found = re.fullmatch(self.pattern, request.path)
        if found is None or (self.when is not None and not self.when(request)):
            return None
        return found.groupdict()


class Protocol:
    """One provider's wire format, as the shared generate path needs it."""

    name: str
    # The protocol's finish reason for "stop", "length" and "blocked".
    finish: dict[str, str]
    # The text of a blocked answer ("" an empty message, None no text part at all).
    blocked_text: str | None = ""
    # False: a fault's retry delay goes in the error body only (Gemini's RetryInfo).
    retry_after_header = True

    def parse(self, body: dict[str, Any], path_model: str | None = None) -> Prompt:
        """The request body as a Prompt; ``path_model`` is the model the URL names (Gemini's)."""
        raise NotImplementedError

    def schema(self, body: dict[str, Any]) -> dict | None:
        """The JSON Schema a structured-output request asks for, if any."""
        raise NotImplementedError

    def response(self, prompt: Prompt, text: str | None, finish: str, usage: Usage, *,
                 prompt_blocked: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, status: int, *, code: str | None = None, message: str | None = None,
                   model: str = "", retry_after: float | None = None) -> dict[str, Any]:
        """The body a real provider sends for this status (and variant ``code``)."""
        raise NotImplementedError

    def context_error(self, tokens: int, limit: int) -> dict[str, Any]:
        """The 400 body of a prompt over the model's context."""
        raise NotImplementedError

    def id_headers(self) -> dict[str, str]:
        # The SDKs surface these as request_id on responses and errors.
        return {}

    def min_cacheable(self, model: str) -> int:
        return 1024

    def cache_usage(self, prompt: Prompt, cfg: dict[str, Any], cache: PrefixCache) -> tuple[int, int]:
        """Cache reads and writes to report. Here OpenAI's and Gemini's automatic caching: exact
        prefixes, in 128-token steps from the minimum (1024, 1152, ... tokens; 4 chars a token)."""
        mode = cfg.get("cached_tokens")
        if mode != "auto":
            return resolve_amount(mode, prompt.tokens), 0
        keys = prefix_keys(prompt, range(self.min_cacheable(prompt.model) * 4, prompt.chars + 1, 128 * 4))
        return cache.lookup_and_store(keys, float(cfg.get("cache_ttl") or 300.0)), 0


def serve(protocol: Protocol, request: Request, model: str | None = None) -> Reply | None:
    """Answer one generate request and record it (the record is in before the reply goes out: once
    the SDK call returns, a test's requests() must already show it)."""
    state = request.state
    started = time.time()
    headers, key_present = redact_headers(request.headers)
    rec: dict[str, Any] = {
        "provider": protocol.name, "model": model, "path": request.path, "headers": headers,
        "api_key_present": key_present or "key" in request.query,  # Gemini also takes ?key=
        "body": None, "prompt_tokens": None, "status": None, "time": started,
    }
    state.enter()
    try:
        reply = _answer(protocol, request, model, rec)
    finally:
        state.leave()
        rec["duration_s"] = round(time.time() - started, 6)
        state.record(rec)
    if state.config.get("verbose"):
        request.log("%s %s -> %s", protocol.name, rec.get("model"), rec.get("status"))
    return reply


def _parse(protocol: Protocol, raw: bytes, model: str | None) -> tuple[dict[str, Any], Prompt]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"We could not parse the JSON body of your request. ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body, protocol.parse(body, model)


def _answer(protocol: Protocol, request: Request, model: str | None, rec: dict[str, Any]) -> Reply | None:
    """Decide the reply (None: drop the connection) and fill in the record."""
    state = request.state
    cfg = state.config  # read without the lock: values are replaced, never mutated
    try:
        body, prompt = _parse(protocol, request.body, model)
    except BadRequest as exc:
        try:
            rec["body"] = json.loads(request.body)
        except ValueError:
            rec["body"] = request.body[:2000].decode("utf-8", "replace")
        rec["status"] = 400
        return json_reply(400, protocol.error_body(400, message=str(exc)))
    rec["body"] = body
    rec["model"] = prompt.model
    rec["prompt_tokens"] = prompt.tokens

    latency = float(cfg.get("latency") or 0.0)
    if latency > 0:
        time.sleep(latency)  # in this handler thread: other requests go on meanwhile

    fault = state.take_fault(prompt)
    kind = fault["kind"] if fault else None
    if fault:
        rec["fault"] = {k: v for k, v in fault.items() if k != "times"}
    if kind == "delay":
        time.sleep(float(fault["seconds"]))
    elif kind == "drop":
        return None
    elif kind == "malformed":
        rec["status"] = 200
        payload = fault.get("body_text") or '{"id": "emulated-malformed", "choices": [{"ind'
        return (200, payload.encode(), fault.get("content_type") or "application/json", {})
    elif kind == "status":
        return _fault_status(protocol, prompt, fault, rec)

    limit = _context_limit(prompt.model, cfg)
    if limit and prompt.tokens > limit:
        rec["status"] = 400
        rec["rejected_over_context"] = True
        return json_reply(400, protocol.context_error(prompt.tokens, limit), protocol.id_headers())

    text, finish, usage = _generate(protocol, prompt, cfg, kind, state.prefix_cache)
    if kind == "blocked" and fault.get("text") is not None:
        text = fault["text"]
    # Structured output (emulator/structured.py): JSON generated from the request's schema.
    schema = protocol.schema(body)
    if isinstance(schema, dict) and kind not in ("blocked", "truncated", "reply"):
        text = structured.answer(prompt.text, schema, kind)
        usage.output = estimate_tokens(len(text))
    if kind == "reply":  # a scripted answer: exactly what the test told the model to say
        text = fault["text"]
        usage.output = estimate_tokens(len(text))
    rec["status"] = 200
    rec["output_tokens"] = usage.output + usage.reasoning
    rec["finish_reason"] = finish
    resp = protocol.response(prompt, text, finish, usage,
                             prompt_blocked=kind == "blocked" and fault.get("where") == "prompt")
    return json_reply(200, resp, protocol.id_headers())


def _context_limit(model: str, cfg: dict[str, Any]) -> int | None:
    per_model = cfg.get("max_context_per_model") or {}
    if model in per_model:
        return int(per_model[model]) or None
    return int(cfg.get("max_context") or 0) or None


def _fault_status(protocol: Protocol, prompt: Prompt, fault: dict[str, Any], rec: dict[str, Any]) -> Reply:
    status = int(fault["status"])
    retry_after = fault.get("retry_after")
    headers = protocol.id_headers()
    if retry_after is not None and (protocol.retry_after_header or fault.get("retry_after_header")):
        headers["retry-after"] = f"{retry_after:g}"
    if fault.get("retry_after_ms") is not None:
        headers["retry-after-ms"] = f"{fault['retry_after_ms']:g}"
    headers.update({str(k): str(v) for k, v in (fault.get("headers") or {}).items()})
    body = fault.get("body")
    if body is None:
        body = protocol.error_body(status, code=fault.get("code"), message=fault.get("message"),
                                   model=prompt.model, retry_after=retry_after)
    rec["status"] = status
    if isinstance(body, str):
        return (status, body.encode(), "text/plain; charset=utf-8", headers)
    return json_reply(status, body, headers)


def _generate(protocol: Protocol, prompt: Prompt, cfg: dict[str, Any], kind: str | None,
              cache: PrefixCache) -> tuple[str | None, str, Usage]:
    cached, cache_write = protocol.cache_usage(prompt, cfg, cache)
    reasoning = max(0, int(cfg.get("reasoning_tokens") or 0))
    usage = Usage(prompt=prompt.tokens, output=0, cached=cached, cache_write=cache_write,
                  reasoning=reasoning)
    if kind == "blocked":
        usage.reasoning = 0
        return protocol.blocked_text, protocol.finish["blocked"], usage

    text = compose_answer(prompt)
    pad = cfg.get("pad_output_tokens")
    if isinstance(pad, int) and pad > 0:
        filler = " lorem ipsum dolor sit amet"
        want = pad * 4
        text = (text + filler * (want // len(filler) + 1))[:want] if want > len(text) else text
    finish = protocol.finish["stop"]
    if kind == "truncated":
        text = text[: max(4, len(text) // 2)]
        finish = protocol.finish["length"]
    if prompt.max_output is not None:
        # The output budget covers reasoning too (max_completion_tokens,
        # maxOutputTokens and Anthropic max_tokens all do).
        budget = max(0, prompt.max_output - reasoning)
        usage.reasoning = min(reasoning, prompt.max_output)
        if estimate_tokens(len(text)) > budget:
            text = text[: budget * 4]
            finish = protocol.finish["length"]
    usage.output = estimate_tokens(len(text))
    return text, finish, usage


def count_tokens(protocol: Protocol, request: Request, count: Callable[[dict[str, Any]], dict[str, Any]]) -> Reply:
    """A token-counting endpoint: ``count`` turns the JSON body into the answer; what it cannot
    read is the protocol's 400. Not recorded: it is no generate call."""
    try:
        return json_reply(200, count(json.loads(request.body or b"{}")))
    except (BadRequest, ValueError, AttributeError) as exc:
        return json_reply(400, protocol.error_body(400, message=str(exc)))
