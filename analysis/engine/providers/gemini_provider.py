from __future__ import annotations

import re
import ssl
from contextlib import AbstractContextManager

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from analysis.engine.providers import PROVIDER_LABELS
from analysis.engine.providers.base import (
    CONTEXT_LENGTH, MALFORMED, QUOTA, ClientShards, Completion, GenerationParams, Prompt, ProviderError, SdkErrors,
    http_client_args, retry_after, sdk_errors, status_error,
)
from analysis.engine.providers.usage import usage_from_gemini

SDK_ERRORS = SdkErrors(status=genai_errors.APIError, timeout=httpx2.TimeoutException,
                       connection=httpx2.TransportError,
                       malformed=(ValueError, genai_errors.UnknownApiResponseError))

_BLOCKED_REASONS = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}


class GeminiProvider:
    name = "gemini"
    label = PROVIDER_LABELS[name]

    def __init__(self, *, api_key: str, base_url: str | None, api_version: str | None, timeout: float,
                 max_connections: int | None = None) -> None:
        # Everything is passed explicitly: the SDK would otherwise read GOOGLE_API_KEY
        # and GOOGLE_GEMINI_BASE_URL on its own. No retry_options: it retries nothing.
        def build(connections: int | None, context: ssl.SSLContext | None) -> genai.Client:
            http_options = types.HttpOptions(
                base_url=base_url or None, api_version=api_version or None, timeout=int(timeout * 1000),
                # The SDK builds its own httpx client from these (keeping its SSL setup); only the pool is sized.
                client_args=http_client_args(connections, context),
            )
            return genai.Client(api_key=api_key, http_options=http_options)

        # Kept on the instance: a temporary Client can be closed under a chained call.
        self.clients = ClientShards(build, max_connections)
        self.client = self.clients.first

    def sdk_calls(self) -> AbstractContextManager[None]:
        """Around every SDK call, standard or batch: its exceptions raised as ProviderError."""
        return sdk_errors(self, SDK_ERRORS, self._api_error)

    def complete(self, *, model: str, prompt: Prompt, params: GenerationParams) -> Completion:
        contents, config = self.request_parts(prompt=prompt, params=params)
        if params.timeout:
            config.http_options = types.HttpOptions(timeout=int(params.timeout * 1000))
        with self.sdk_calls():
            with self.clients.lease() as client:
                response = client.models.generate_content(model=model, contents=contents, config=config)
        return self.completion_of(response)

    def request_parts(self, *, prompt: Prompt, params: GenerationParams
                      ) -> tuple[list[types.Content], types.GenerateContentConfig]:
        """The contents and config of a generateContent request (also of a batch's inline request)."""
        config = types.GenerateContentConfig(
            system_instruction=prompt.system or None,
            max_output_tokens=params.max_output_tokens,
            temperature=params.temperature,
        )
        if params.schema is not None:
            config.response_mime_type = "application/json"
            config.response_json_schema = params.schema
        if params.service_tier:
            config.service_tier = types.ServiceTier(params.service_tier)
        contents = [types.Content(role="user", parts=[types.Part(text=prompt.document), types.Part(text=prompt.instruction)])]
        return contents, config

    def completion_of(self, response: types.GenerateContentResponse) -> Completion:
        """A GenerateContentResponse (from the SDK, or a batch's inline response) as a Completion."""
        candidate = response.candidates[0] if response.candidates else None
        finish = ""
        if candidate is not None and candidate.finish_reason is not None:
            finish = getattr(candidate.finish_reason, "value", str(candidate.finish_reason))
        block_reason = ""
        if response.prompt_feedback is not None and response.prompt_feedback.block_reason is not None:
            block_reason = getattr(response.prompt_feedback.block_reason, "value", str(response.prompt_feedback.block_reason))
        text = ""
        if candidate is not None and candidate.content is not None and candidate.content.parts:
            # Thought parts are the model's reasoning, not the answer.
            text = "".join(p.text for p in candidate.content.parts if p.text and not p.thought)
        return Completion(
            text=text,
            usage=usage_from_gemini(response.usage_metadata),
            finish_reason=block_reason or finish,
            truncated=finish == "MAX_TOKENS",
            blocked=bool(block_reason) or finish in _BLOCKED_REASONS,
        )

    def _api_error(self, exc: genai_errors.APIError) -> ProviderError:
        status = exc.code or 0
        message = exc.message or str(exc)
        details = exc.details if isinstance(exc.details, dict) else {}
        error = details.get("error", details) if isinstance(details, dict) else {}
        kind = None if status else MALFORMED
        wait = _retry_delay(error) or retry_after(exc)
        lowered = message.lower()
        if status == 429 and _is_daily_quota(error):
            # RESOURCE_EXHAUSTED is both "slow down" and "out of quota for today";
            # only the QuotaFailure details tell them apart.
            kind = QUOTA
        elif status == 400 and "token" in lowered and "exceed" in lowered:
            kind = CONTEXT_LENGTH
        elif status == 429 and wait is None and "quota" in lowered and "per day" in lowered:
            kind = QUOTA
        return status_error(self, status, message, kind=kind, retry_after=wait)


def _retry_delay(error: dict) -> float | None:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("RetryInfo"):
            match = re.fullmatch(r"\s*([\d.]+)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _is_daily_quota(error: dict) -> bool:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("QuotaFailure"):
            for violation in detail.get("violations") or []:
                quota_id = str(violation.get("quotaId", "")) + str(violation.get("quotaMetric", ""))
                if "PerDay" in quota_id or "per_day" in quota_id.lower():
                    return True
    return False
