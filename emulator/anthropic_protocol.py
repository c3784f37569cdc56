"""The Anthropic wire protocol: POST /v1/messages and /v1/messages/count_tokens, GET /v1/models; its
error bodies, and its prompt caching, which reads and writes only up to explicit cache_control
breakpoints."""

from __future__ import annotations

import uuid
from typing import Any

from emulator.caching import PrefixCache, prefix_keys, resolve_amount
from emulator.prompt import BadRequest, Prompt, Segment, Usage, chat_messages, required_model, text_of_content
from emulator.protocol import Protocol, Reply, Request, Route, count_tokens, error_table, json_reply, serve

MODELS = ("claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-6", "claude-opus-4-5")

ERRORS = error_table("anthropic")

# Fault codes that change the whole error, not only details.error_code.
BILLING_ERRORS = {
    "credit_balance": ("Your credit balance is too low to access the Anthropic API. Please go to Plans & "
                       "Billing to upgrade or purchase credits."),
    "spend_limit": ("You have reached your specified API usage limits. You will regain access on "
                    "2026-12-01 at 00:00 UTC."),
}


def _request_id() -> str:
    return f"req_emu{uuid.uuid4().hex[:20]}"


def _error(etype: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": etype, "message": message}
    if details:
        err["details"] = details
    return {"type": "error", "error": err, "request_id": _request_id()}


class AnthropicProtocol(Protocol):
    name = "anthropic"
    finish = {"stop": "end_turn", "length": "max_tokens", "blocked": "refusal"}

    def parse(self, body: dict[str, Any], path_model: str | None = None) -> Prompt:
        model = required_model(body, "model: Field required")
        if not isinstance(body.get("max_tokens"), int):
            raise BadRequest("max_tokens: Field required")
        messages = chat_messages(body, "messages: Field required")
        segments: list[Segment] = []
        text_of_content(body.get("system"), segments, "system")
        for msg in messages:
            if not isinstance(msg, dict):
                raise BadRequest("messages: each message must be an object")
            text_of_content(msg.get("content"), segments, msg.get("role", "user"))
        return Prompt("anthropic", model, segments, body["max_tokens"])

    def schema(self, body: dict[str, Any]) -> dict | None:
        fmt = (body.get("output_config") or {}).get("format") or {}
        return fmt.get("schema") if fmt.get("type") == "json_schema" else None

    def response(self, prompt: Prompt, text: str | None, finish: str, usage: Usage, *,
                 prompt_blocked: bool = False) -> dict[str, Any]:
        counts: dict[str, Any] = {
            # input_tokens excludes cache reads and cache writes: the three add up.
            "input_tokens": max(0, usage.prompt - usage.cached - usage.cache_write),
            "output_tokens": usage.output + usage.reasoning,
            "cache_read_input_tokens": usage.cached,
            "cache_creation_input_tokens": usage.cache_write,
            "cache_creation": {"ephemeral_5m_input_tokens": usage.cache_write,
                               "ephemeral_1h_input_tokens": 0},
            "service_tier": "standard",
        }
        if usage.reasoning:
            counts["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
        body: dict[str, Any] = {
            "id": f"msg_emu{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": [{"type": "text", "text": text, "citations": None}] if text else [],
            "stop_reason": finish,
            "stop_sequence": None,
            "usage": counts,
        }
        if finish == "refusal":
            body["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
        return body

    def error_body(self, status: int, *, code: str | None = None, message: str | None = None,
                   model: str = "", retry_after: float | None = None) -> dict[str, Any]:
        entry = ERRORS.get(status) or {"type": "api_error" if status >= 500 else "invalid_request_error",
                                       "message": f"Error {status}"}
        etype, emsg = entry["type"], entry["message"]
        if code in BILLING_ERRORS:
            return _error("invalid_request_error", message or BILLING_ERRORS[code])
        if code is None:
            return _error(etype, message or emsg)
        # anthropic 2.x maps error.details.error_code to its own exception classes
        # (e.g. EnforcedSpendLimitReachedError for 429 enforced_spend_limit_reached).
        if code.endswith("spend_limit_reached"):
            emsg = "Your organization has reached its monthly spend limit for its usage tier."
        return _error(etype, message or emsg, {"error_code": code})

    def context_error(self, tokens: int, limit: int) -> dict[str, Any]:
        return _error("invalid_request_error", f"prompt is too long: {tokens} tokens > {limit} maximum")

    def id_headers(self) -> dict[str, str]:
        return {"request-id": _request_id()}

    def min_cacheable(self, model: str) -> int:
        # Minimum cacheable prefixes as documented: Haiku 4.5 and Opus 4.5 need 4096 tokens.
        return 4096 if "haiku-4-5" in model or "opus-4-5" in model else 1024

    def cache_usage(self, prompt: Prompt, cfg: dict[str, Any], cache: PrefixCache) -> tuple[int, int]:
        total = prompt.tokens
        mode = cfg.get("cached_tokens")
        if mode != "auto":
            cached = resolve_amount(mode, total)
            return cached, min(total - cached, resolve_amount(cfg.get("cache_write_tokens"), total))
        # Only up to explicit cache_control breakpoints: the longest breakpoint prefix seen before
        # is read, the rest up to the last breakpoint is written.
        ends: list[int] = []
        offset = 0
        for seg in prompt.segments:
            offset += len(seg.text)
            if seg.cache_breakpoint:
                ends.append(offset)
        minimum = self.min_cacheable(prompt.model)
        keys = [(t, k) for t, k in prefix_keys(prompt, ends) if t >= minimum]
        if not keys:
            return 0, 0  # below the minimum nothing is cached and nothing fails
        read = min(cache.lookup_and_store(keys, float(cfg.get("cache_ttl") or 300.0)), total)
        write = max(t for t, _ in keys) - read
        return read, max(0, min(write, total - read))


ANTHROPIC = AnthropicProtocol()


def _count(body: dict[str, Any]) -> dict[str, Any]:
    body.setdefault("max_tokens", 1)  # count_tokens takes no max_tokens; parse() wants one
    return {"input_tokens": ANTHROPIC.parse(body).tokens}


def list_models(request: Request) -> Reply:
    return json_reply(200, {"data": [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in MODELS], "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})


ROUTES = [
    Route("POST", r"/v1/messages", lambda request: serve(ANTHROPIC, request)),
    Route("POST", r"/v1/messages/count_tokens", lambda request: count_tokens(ANTHROPIC, request, _count)),
    Route("GET", r"/v1/models", list_models,
          when=lambda request: "x-api-key" in request.headers or "anthropic-version" in request.headers),
]
