from __future__ import annotations

import openai

from analysis.pricing import usage_from_openai
from analysis.providers.base import (
    CONNECTION, CONTEXT_LENGTH, MALFORMED, QUOTA, TIMEOUT, Completion, GenerationParams, Prompt,
    ProviderError, parse_retry_after, status_kind,
)


# 429s that no amount of waiting fixes: no credit, or a spend/usage limit reached. OpenAI gives them all
# error.type "insufficient_quota"; the codes are matched too for OpenAI-compatible proxies that copy only those.
_NO_CREDIT_CODES = frozenset({
    "insufficient_quota", "billing_hard_limit_reached", "credit_balance_exhausted",
    "organization_spend_limit_exceeded", "project_spend_limit_exceeded", "organization_usage_limit_exceeded",
})


class OpenAIProvider:
    name = "openai"
    label = "OpenAI"

    def __init__(self, *, api_key: str, base_url: str | None, timeout: float, name: str | None = None,
                 label: str | None = None) -> None:
        if name:  # a named OpenAI-compatible endpoint (analysis.endpoints): errors carry its name
            self.name, self.label = name, label or name
        # max_retries=0: retries happen in analysis/retry.py, where they are counted and bounded.
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0)

    def complete(self, *, model: str, prompt: Prompt, params: GenerationParams) -> Completion:
        kwargs = self.request_body(model=model, prompt=prompt, params=params)
        if params.timeout:
            kwargs["timeout"] = params.timeout
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(self.name, TIMEOUT, f"{self.label} did not answer in time") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(self.name, CONNECTION, f"{self.label} connection failed: {exc}") from exc
        except (openai.APIResponseValidationError, ValueError) as exc:
            raise ProviderError(self.name, MALFORMED, f"{self.label} sent a malformed response") from exc
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

    def completion_of(self, response) -> Completion:
        """A ChatCompletion (from the SDK, or a Batch API output line's body) as a Completion."""
        if not getattr(response, "choices", None):
            raise ProviderError(self.name, MALFORMED, f"{self.label} sent a response without choices")
        choice = response.choices[0]
        finish = choice.finish_reason or ""
        text = (choice.message.content if choice.message else None) or ""
        refusal = getattr(choice.message, "refusal", None) if choice.message else None
        return Completion(
            text=text,
            usage=usage_from_openai(response.usage),
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
        kind = status_kind(status)
        if err_type == "insufficient_quota" or code in _NO_CREDIT_CODES:
            # A 429 that no amount of waiting fixes: no credit, or a spend/usage limit
            # (organization_spend_limit_exceeded & co. share type insufficient_quota).
            kind = QUOTA
        elif code == "context_length_exceeded":
            kind = CONTEXT_LENGTH
        return ProviderError(
            self.name, kind, _describe(self.label, kind, status, message), status=status,
            retry_after=parse_retry_after(exc.response.headers if exc.response is not None else None),
        )


def _describe(label: str, kind: str, status: int, message: str) -> str:
    from analysis.providers.base import AUTH, PERMISSION, RATE_LIMIT

    if kind == AUTH:
        return f"{label} rejected the API key ({status})"
    if kind == PERMISSION:
        return f"{label} refused access ({status}): {message[:200]}"
    if kind == QUOTA:
        return f"{label} account is out of quota or credit ({status}): {message[:200]}"
    if kind == RATE_LIMIT:
        return f"{label} rate limit ({status}): {message[:200]}"
    return f"{label} error {status}: {message[:300]}"
