"""The OpenAI wire protocol: POST /v1/chat/completions, GET /v1/models[/{id}]; its error bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any

from emulator.prompt import BadRequest, Prompt, Segment, Usage, chat_messages, required_model, text_of_content
from emulator.protocol import Protocol, Reply, Request, Route, error_table, json_reply, serve

MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini")

ERRORS = error_table("openai")

# Billing problems share the type insufficient_quota; only the code tells them apart.
BILLING_CODES = ("insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
                 "project_spend_limit_exceeded", "organization_usage_limit_exceeded")


class OpenAIProtocol(Protocol):
    name = "openai"
    finish = {"stop": "stop", "length": "length", "blocked": "content_filter"}

    def parse(self, body: dict[str, Any], path_model: str | None = None) -> Prompt:
        model = required_model(body, "you must provide a model parameter")
        messages = chat_messages(body, "'messages' must be a non-empty array")
        segments: list[Segment] = []
        for msg in messages:
            if not isinstance(msg, dict):
                raise BadRequest("each message must be an object")
            role = msg.get("role", "user")
            role = "system" if role in ("system", "developer") else role
            text_of_content(msg.get("content"), segments, role)
        # Reasoning models take max_completion_tokens; the older name still works.
        max_out = body.get("max_completion_tokens", body.get("max_tokens"))
        return Prompt("openai", model, segments, max_out if isinstance(max_out, int) else None)

    def schema(self, body: dict[str, Any]) -> dict | None:
        fmt = body.get("response_format") or {}
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return (fmt.get("json_schema") or {}).get("schema")
        return None

    def response(self, prompt: Prompt, text: str | None, finish: str, usage: Usage, *,
                 prompt_blocked: bool = False) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-emu{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": prompt.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None,
                            "annotations": []},
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": {
                # prompt_tokens includes cached_tokens; completion_tokens includes reasoning.
                "prompt_tokens": usage.prompt,
                "completion_tokens": usage.output + usage.reasoning,
                "total_tokens": usage.prompt + usage.output + usage.reasoning,
                "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": usage.reasoning, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }

    def error_body(self, status: int, *, code: str | None = None, message: str | None = None,
                   model: str = "", retry_after: float | None = None) -> dict[str, Any]:
        entry = ERRORS.get(status) or {"type": "server_error" if status >= 500 else "invalid_request_error",
                                       "message": f"Error {status}"}
        etype, emsg, ecode = entry["type"], entry["message"], entry.get("code")
        if code in BILLING_CODES:
            etype, ecode = "insufficient_quota", code
            emsg = ("You exceeded your current quota, please check your plan and billing details. "
                    "For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors.")
        elif code is not None:
            ecode = code
        if status == 429 and ecode == "rate_limit_exceeded":
            emsg = emsg.replace("for requests", f"for {model or 'requests'}")
            if retry_after is not None:
                emsg = emsg.replace("try again in 1s", f"try again in {retry_after:g}s")
        return {"error": {"message": message or emsg, "type": etype, "param": None, "code": ecode}}

    def context_error(self, tokens: int, limit: int) -> dict[str, Any]:
        return {"error": {
            "message": (f"This model's maximum context length is {limit} tokens. However, your "
                        f"messages resulted in {tokens} tokens. Please reduce the length of the "
                        f"messages."),
            "type": "invalid_request_error", "param": "messages",
            "code": "context_length_exceeded"}}

    def id_headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_emu{uuid.uuid4().hex[:24]}"}


OPENAI = OpenAIProtocol()


def list_models(request: Request) -> Reply:
    # With a context cap configured, say it as vLLM does (max_model_len), so a client can learn it.
    cap = request.state.config.get("max_context")
    return json_reply(200, {"object": "list", "data": [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "emulator",
         **({"max_model_len": cap} if cap else {})}
        for m in MODELS]})


def get_model(request: Request) -> Reply:
    return json_reply(200, {"id": request.params["model"], "object": "model", "created": 1700000000,
                            "owned_by": "emulator"})


ROUTES = [
    Route("POST", r"/v1/chat/completions", lambda request: serve(OPENAI, request)),
    # The path is shared with Anthropic and Gemini, whose rows claim it by their headers.
    Route("GET", r"/v1/models", list_models, fallback=True),
    Route("GET", r"/v1/models/(?:.*/)?(?P<model>[^/]*)", get_model),
]
