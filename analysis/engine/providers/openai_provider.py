from __future__ import annotations

import ssl
from contextlib import AbstractContextManager

import openai
from openai._base_client import make_request_options

from analysis.engine.providers import PROVIDER_LABELS
from analysis.engine.providers.base import (
    CONTEXT_LENGTH, MALFORMED, QUOTA, ClientShards, Completion, GenerationParams, Prompt, ProviderError, SdkErrors,
    http_client_args, retry_after, sdk_errors, status_error,
)
from analysis.engine.providers.usage import usage_from_openai

SDK_ERRORS = SdkErrors(status=openai.APIStatusError, timeout=openai.APITimeoutError,
                       connection=openai.APIConnectionError,
                       malformed=(openai.APIResponseValidationError, ValueError))

# 429s that no amount of waiting fixes: no credit, or a spend/usage limit reached. OpenAI gives them all
# error.type "insufficient_quota"; the codes are matched too for OpenAI-compatible proxies that copy only those.
_NO_CREDIT_CODES = frozenset({
    "insufficient_quota", "billing_hard_limit_reached", "credit_balance_exhausted",
    "organization_spend_limit_exceeded", "project_spend_limit_exceeded", "organization_usage_limit_exceeded",
})


class OpenAIProvider:
    name = "openai"
    label = PROVIDER_LABELS[name]

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float, name: str | None = None,
                 label: str | None = None, max_connections: int | None = None) -> None:
        if name:  # a named OpenAI-compatible endpoint (analysis.engine.openai_compatible): errors carry its name
            self.name, self.label = name, label or name
        # max_retries=0: retries happen in analysis/engine/retry.py, where they are counted and bounded.
        # The SDK's own client class keeps its transport defaults; only the pool is sized (http_client_args).
        def build(connections: int | None, context: ssl.SSLContext | None) -> openai.OpenAI:
            args = http_client_args(connections, context)
            http_client = openai.DefaultHttpxClient(**args) if args else None
            return openai.OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0,
                                 http_client=http_client)

        self.clients = ClientShards(build, max_connections)
        self.client = self.clients.first

    def sdk_calls(self) -> AbstractContextManager[None]:
        """Around every SDK call, standard or batch: its exceptions raised as ProviderError."""
        return sdk_errors(self, SDK_ERRORS, self._status_error)

    def complete(self, *, model: str, prompt: Prompt, params: GenerationParams) -> Completion:
        body = self.request_body(model=model, prompt=prompt, params=params)
        options = make_request_options(timeout=params.timeout or openai.NOT_GIVEN, security={"bearer_auth": True})
        with self.sdk_calls():
            # What chat.completions.create sends, without its typed transform of the body: that walks every
            # message through the SDK's union of message types, more CPU than the rest of the call, to return
            # the plain JSON it was given (request_body builds only JSON types, no aliases, dates or files).
            # The answer comes back as its JSON too (cast_to=object): completion_of reads four fields of it,
            # where building the typed ChatCompletion would validate every field of the response.
            with self.clients.lease() as client:
                response = client.post("/chat/completions", body=body, options=options, cast_to=object)
        return self.completion_of(response)

    def request_body(self, *, model: str, prompt: Prompt, params: GenerationParams) -> dict:
        """The chat completions request (also the `body` of a Batch API line)."""
        messages = []
        if prompt.system:
            messages.append({"role": "system", "content": prompt.system})
        # The transcript and the instruction are separate messages so that the shared
        # prefix (system + transcript) ends on a message boundary, identical across tasks.
        messages.append({"role": "user", "content": prompt.document})
        messages.append({"role": "user", "content": prompt.instruction})
        kwargs: dict = {"model": model, "messages": messages}
        if params.reasoning_model:
            # Reasoning models take max_completion_tokens and refuse a custom temperature.
            kwargs["max_completion_tokens"] = params.max_output_tokens
        else:
            kwargs["max_tokens"] = params.max_output_tokens
            if params.temperature is not None:
                kwargs["temperature"] = params.temperature
        if prompt.cache_key:
            kwargs["prompt_cache_key"] = prompt.cache_key
        if params.schema is not None:
            kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                "name": params.schema_name, "schema": params.schema, "strict": params.schema_strict}}
        if params.service_tier:
            kwargs["service_tier"] = params.service_tier
        return kwargs

    def completion_of(self, response: object) -> Completion:
        """A chat completion's JSON (the API's answer, or a Batch API output line's body) as a Completion."""
        choices = response.get("choices") if isinstance(response, dict) else None
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise ProviderError(self.name, MALFORMED, f"{self.label} sent a response without choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        finish = choice.get("finish_reason") or ""
        text = message.get("content") or ""
        refusal = message.get("refusal")
        if not isinstance(text, str) or not isinstance(finish, str):
            raise ProviderError(self.name, MALFORMED, f"{self.label} sent a response whose answer is not text")
        return Completion(
            text=text,
            usage=usage_from_openai(response.get("usage")),
            finish_reason=finish if not refusal else f"refusal: {refusal}",
            truncated=finish == "length",
            blocked=finish == "content_filter" or bool(refusal),
        )

    def _status_error(self, exc: openai.APIStatusError) -> ProviderError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body, dict) else {}
        code = (error or {}).get("code") or ""
        err_type = (error or {}).get("type") or ""
        message = (error or {}).get("message") or str(exc)
        kind = None
        if err_type == "insufficient_quota" or code in _NO_CREDIT_CODES:
            kind = QUOTA
        elif code == "context_length_exceeded":
            kind = CONTEXT_LENGTH
        return status_error(self, status, message, kind=kind, retry_after=retry_after(exc))
