from __future__ import annotations

import ssl
from contextlib import AbstractContextManager

import anthropic

from analysis.engine.providers import PROVIDER_LABELS
from analysis.engine.providers.base import (
    CONTEXT_LENGTH, QUOTA, ClientShards, Completion, GenerationParams, Prompt, ProviderError, SdkErrors,
    http_client_args, retry_after, sdk_errors, status_error,
)
from analysis.engine.providers.usage import usage_from_anthropic

SDK_ERRORS = SdkErrors(status=anthropic.APIStatusError, timeout=anthropic.APITimeoutError,
                       connection=anthropic.APIConnectionError,
                       malformed=(anthropic.APIResponseValidationError, ValueError))

# Spend-limit errors arrive as 402 or 429 with these types; retrying cannot help.
_SPEND_LIMIT_TYPES = {"enforced_spend_limit_reached", "contract_spend_limit_reached", "billing_error"}


class AnthropicProvider:
    name = "anthropic"
    label = PROVIDER_LABELS[name]

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float,
                 max_connections: int | None = None) -> None:
        def build(connections: int | None, context: ssl.SSLContext | None) -> anthropic.Anthropic:
            args = http_client_args(connections, context)
            http_client = anthropic.DefaultHttpxClient(**args) if args else None
            return anthropic.Anthropic(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0,
                                       http_client=http_client)

        self.clients = ClientShards(build, max_connections)
        self.client = self.clients.first

    def sdk_calls(self) -> AbstractContextManager[None]:
        """Around every SDK call, standard or batch: its exceptions raised as ProviderError."""
        return sdk_errors(self, SDK_ERRORS, self._status_error)

    def complete(self, *, model: str, prompt: Prompt, params: GenerationParams) -> Completion:
        kwargs = self.request_body(model=model, prompt=prompt, params=params)
        with self.sdk_calls():
            with self.clients.lease() as client:
                response = client.messages.create(**kwargs)
        return self.completion_of(response)

    def request_body(self, *, model: str, prompt: Prompt, params: GenerationParams) -> dict:
        """The Messages request (also the `params` of a Message Batches request)."""
        kwargs: dict = {
            "model": model,
            "max_tokens": params.max_output_tokens,
            "messages": [{
                "role": "user",
                "content": [
                    # The breakpoint after the transcript caches system + transcript for
                    # the other tasks of the job (below the model's minimum it is ignored).
                    {"type": "text", "text": prompt.document, "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": prompt.instruction},
                ],
            }],
        }
        if prompt.system:
            kwargs["system"] = [{"type": "text", "text": prompt.system}]
        if params.schema is not None:
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": closed_objects(params.schema)}}
        # No temperature: API version 2026-10-21 (what anthropic 2.x sends) rejects temperature, top_p and
        # top_k with a 400 on every model, even at default values, and the SDK no longer takes them. A job's
        # temperature therefore applies to OpenAI chat models and Gemini only.
        return kwargs

    def completion_of(self, response) -> Completion:
        """A Message (from the SDK, or a Message Batches result) as a Completion."""
        text = "".join(block.text for block in (response.content or []) if getattr(block, "type", "") == "text")
        stop = response.stop_reason or ""
        return Completion(
            text=text,
            usage=usage_from_anthropic(response.usage),
            finish_reason=stop,
            truncated=stop == "max_tokens",
            blocked=stop == "refusal",
        )

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        err_type = (error or {}).get("type") or ""
        details = (error or {}).get("details") if isinstance((error or {}).get("details"), dict) else {}
        # anthropic 2.x: the stable cause is error.details.error_code (a spend limit arrives as a 429
        # rate_limit_error whose error_code says enforced_spend_limit_reached): no wait fixes it.
        error_code = getattr(exc, "error_code", None) or details.get("error_code") or ""
        message = (error or {}).get("message") or str(exc)
        lowered = message.lower()
        kind = None
        if (err_type in _SPEND_LIMIT_TYPES or error_code in _SPEND_LIMIT_TYPES or error_code.endswith("spend_limit_reached")
                or (status == 400 and ("credit balance" in lowered or "usage limits" in lowered))):
            kind = QUOTA
        elif status == 400 and "prompt is too long" in lowered:
            kind = CONTEXT_LENGTH
        return status_error(self, status, message, kind=kind, retry_after=retry_after(exc))


def closed_objects(schema):
    """The schema with `additionalProperties: false` on every object that leaves it open: Anthropic's
    structured output takes closed objects only. The answer is still validated against the task's own
    schema, of which this is a stricter form."""
    if isinstance(schema, list):
        return [closed_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: closed_objects(sub) for name, sub in value.items()}  # names, not keywords
        elif key in ("enum", "const", "default", "examples"):
            out[key] = value
        else:
            out[key] = closed_objects(value)
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
