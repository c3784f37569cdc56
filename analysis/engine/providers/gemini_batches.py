"""Gemini's Batch Mode with inline requests: `batches.create(model, src=[InlinedRequest], config={"display_name":
key})`; the results are the batch's inline responses, each carrying the `metadata` its request was sent with
(our custom id), which maps it back."""

from __future__ import annotations

import datetime as dt

from google.genai import types

from analysis.engine.providers.base import Completion, GenerationParams, Prompt
from analysis.engine.providers.gemini_provider import GeminiProvider
from analysis.engine.providers.provider_batches import (
    CANCELED, COMPLETED, ENDED, EXPIRED, FAILED, IN_PROGRESS, BatchState, ProviderBatches,
)

CUSTOM_ID = "custom_id"
_ENDED = {"JOB_STATE_SUCCEEDED": COMPLETED, "JOB_STATE_EXPIRED": EXPIRED, "JOB_STATE_FAILED": FAILED,
          "JOB_STATE_CANCELLED": CANCELED}


class GeminiBatches(ProviderBatches):
    name = "gemini"
    max_requests = 10_000  # inline requests are capped by size (20 MB) rather than count
    provider: GeminiProvider

    def build(self, *, custom_id: str, model: str, prompt: Prompt, params: GenerationParams) -> dict:
        contents, config = self.provider.request_parts(prompt=prompt, params=params)
        return {"metadata": {CUSTOM_ID: custom_id},
                "contents": [content.model_dump(mode="json", exclude_none=True) for content in contents],
                "config": config.model_dump(mode="json", exclude_none=True)}

    def create(self, *, model: str, entries: list[dict], key: str) -> str:
        inline = [types.InlinedRequest(model=model, contents=entry["contents"], metadata=entry["metadata"],
                                       config=types.GenerateContentConfig.model_validate(entry["config"]))
                  for entry in entries]
        job = self._sdk(lambda: self.client.batches.create(model=model, src=inline, config={"display_name": key}))
        return job.name

    def find(self, *, key: str, since: dt.datetime, count: int, claimed: set[str]) -> str | None:
        for job in self._sdk(lambda: list(self.client.batches.list(config={"page_size": 100}))):
            if job.display_name == key:
                return job.name
        return None

    def state(self, batch_id: str) -> BatchState:
        job = self._sdk(lambda: self.client.batches.get(name=batch_id))
        state = getattr(job.state, "value", str(job.state))
        if state in _ENDED:
            return BatchState(ENDED, _ENDED[state])
        return BatchState(IN_PROGRESS)

    def results(self, batch_id: str) -> dict[str, Completion | str]:
        job = self._sdk(lambda: self.client.batches.get(name=batch_id))
        out: dict[str, Completion | str] = {}
        for item in (job.dest.inlined_responses if job.dest and job.dest.inlined_responses else []):
            custom_id = (item.metadata or {}).get(CUSTOM_ID)
            if not custom_id:
                continue
            if item.response is not None:
                out[custom_id] = self.provider.completion_of(item.response)
            else:
                message = getattr(item.error, "message", None) or "no response"
                out[custom_id] = f"Gemini batch request failed: {message}"
        return out

    def cancel(self, batch_id: str) -> None:
        self._sdk(lambda: self.client.batches.cancel(name=batch_id))
