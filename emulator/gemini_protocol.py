"""The Gemini wire protocol (v1 and v1beta): POST /{version}/models/{model}:generateContent and
:countTokens, GET /{version}/models; its error bodies (google.rpc statuses, QuotaFailure, RetryInfo)."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from emulator.prompt import BadRequest, Prompt, Segment, Usage
from emulator.protocol import Protocol, Reply, Request, Route, count_tokens, error_table, json_reply, serve

MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite")

ERRORS = error_table("gemini")

_SAFETY_BLOCKED = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]


def _parts(content: Any, segments: list[Segment], role: str) -> None:
    if isinstance(content, str):
        segments.append(Segment(role, content))
        return
    if not isinstance(content, dict):
        return
    for part in content.get("parts") or []:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            segments.append(Segment(role, part["text"]))


def _quota_details(code: str, model: str) -> list[dict[str, Any]]:
    # QuotaFailure is what tells a daily (come back tomorrow) from a per-minute quota.
    per_day = code == "per_day"
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    return [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                         "quotaId": quota_id,
                         "quotaDimensions": {"location": "global", "model": model or "gemini-2.5-flash"},
                         "quotaValue": "250" if per_day else "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    ]


class GeminiProtocol(Protocol):
    name = "gemini"
    finish = {"stop": "STOP", "length": "MAX_TOKENS", "blocked": "SAFETY"}
    blocked_text = None  # a blocked candidate has no text part at all
    retry_after_header = False  # the delay is told in the body (RetryInfo)

    def parse(self, body: dict[str, Any], path_model: str | None = None) -> Prompt:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
        segments: list[Segment] = []
        # REST uses camelCase; proto-JSON also accepts snake_case.
        _parts(body.get("systemInstruction", body.get("system_instruction")), segments, "system")
        for content in contents:
            role = content.get("role", "user") if isinstance(content, dict) else "user"
            _parts(content, segments, "assistant" if role == "model" else "user")
        gen = self._generation_config(body)
        max_out = gen.get("maxOutputTokens", gen.get("max_output_tokens")) if isinstance(gen, dict) else None
        return Prompt("gemini", path_model or "", segments, max_out if isinstance(max_out, int) else None)

    @staticmethod
    def _generation_config(body: dict[str, Any]) -> Any:
        return body.get("generationConfig", body.get("generation_config")) or {}

    def schema(self, body: dict[str, Any]) -> dict | None:
        gen = self._generation_config(body)
        return gen.get("responseJsonSchema", gen.get("response_json_schema"))

    def response(self, prompt: Prompt, text: str | None, finish: str, usage: Usage, *,
                 prompt_blocked: bool = False) -> dict[str, Any]:
        counts: dict[str, Any] = {
            # promptTokenCount INCLUDES cachedContentTokenCount; candidatesTokenCount EXCLUDES
            # thoughtsTokenCount; the total adds them all.
            "promptTokenCount": usage.prompt,
            "totalTokenCount": usage.prompt + usage.output + usage.reasoning,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.prompt}],
        }
        if text is not None:
            counts["candidatesTokenCount"] = usage.output
        if usage.cached:
            counts["cachedContentTokenCount"] = usage.cached
            counts["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.cached}]
        if usage.reasoning:
            counts["thoughtsTokenCount"] = usage.reasoning
        body: dict[str, Any] = {"usageMetadata": counts, "modelVersion": prompt.model,
                                "responseId": uuid.uuid4().hex[:22]}
        if prompt_blocked:
            body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_BLOCKED}
            return body
        candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
        if text is not None:
            candidate["content"] = {"role": "model", "parts": [{"text": text}]}
        if finish == "SAFETY":
            candidate["safetyRatings"] = _SAFETY_BLOCKED
        body["candidates"] = [candidate]
        return body

    def error_body(self, status: int, *, code: str | None = None, message: str | None = None,
                   model: str = "", retry_after: float | None = None) -> dict[str, Any]:
        entry = ERRORS.get(status) or {"status": "INTERNAL" if status >= 500 else "FAILED_PRECONDITION",
                                       "message": f"Error {status}"}
        err: dict[str, Any] = {"code": status, "message": message or entry["message"], "status": entry["status"]}
        if status == 429:
            details = _quota_details(code, model) if code in ("per_minute", "per_day") else []
            if code != "per_day" or retry_after is not None:
                delay = retry_after if retry_after is not None else 2
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:g}s"})
            err["details"] = details
        return {"error": err}

    def context_error(self, tokens: int, limit: int) -> dict[str, Any]:
        return {"error": {
            "code": 400,
            "message": (f"The input token count ({tokens}) exceeds the maximum number of tokens "
                        f"allowed ({limit})."),
            "status": "INVALID_ARGUMENT"}}

    def min_cacheable(self, model: str) -> int:
        # Minimum cacheable prefixes as documented: the Pro models need 4096 tokens.
        return 4096 if "pro" in model else 1024


GEMINI = GeminiProtocol()


def _model(request: Request) -> str:
    return urllib.parse.unquote(request.params["model"])


def _count(request: Request) -> Reply:
    def count(body: dict[str, Any]) -> dict[str, Any]:
        # countTokens wraps the request: {"contents": ...} or {"generateContentRequest": {...}}.
        prompt = GEMINI.parse(body.get("generateContentRequest") or body, _model(request))
        return {"totalTokens": prompt.tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt.tokens}]}
    return count_tokens(GEMINI, request, count)


def _unsupported(request: Request) -> Reply:
    return json_reply(404, GEMINI.error_body(404, message=(
        f"Method {request.params['action']} is not supported by the emulator.")))


def list_models(request: Request) -> Reply:
    return json_reply(200, {"models": [
        {"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576,
         "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"]}
        for m in MODELS]})


_METHOD = r"/v1(?:beta)?/models/(?P<model>.*):"

ROUTES = [
    Route("POST", _METHOD + "generateContent", lambda request: serve(GEMINI, request, _model(request))),
    Route("POST", _METHOD + "countTokens", _count),
    Route("POST", _METHOD + r"(?P<action>[^:]*)", _unsupported, fallback=True),
    Route("GET", r"/v1beta/models", list_models),
    Route("GET", r"/v1/models", list_models, when=lambda request: "x-goog-api-key" in request.headers),
]
