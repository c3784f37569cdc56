"""Anthropic's Message Batches: `messages.batches.create` with one `{"custom_id", "params"}` per request;
results streamed unordered by `batches.results`, mapped back by custom_id.

The submission key: a message batch takes no metadata and no name, so a batch created by a worker that died
before it stored the id is recognised by the rule in `find`: the earliest batch created at or after the key
was committed (less a clock allowance), not claimed by another of our submissions, carrying exactly our number
of requests. Only one poller submits at a time (its Redis lock) and every submission is committed before its
create call, so between two committed keys at most one batch of ours can have been created."""

from __future__ import annotations

import datetime as dt

from analysis.engine.providers.anthropic_provider import AnthropicProvider
from analysis.engine.providers.base import Completion, GenerationParams, Prompt
from analysis.engine.providers.provider_batches import (
    CANCELED, COMPLETED, ENDED, EXPIRED, IN_PROGRESS, BatchState, ProviderBatches,
)

CLOCK_ALLOWANCE = dt.timedelta(seconds=60)  # their clock against ours


class AnthropicBatches(ProviderBatches):
    name = "anthropic"
    max_requests = 100_000
    provider: AnthropicProvider

    def build(self, *, custom_id: str, model: str, prompt: Prompt, params: GenerationParams) -> dict:
        return {"custom_id": custom_id, "params": self.provider.request_body(model=model, prompt=prompt, params=params)}

    def create(self, *, model: str, entries: list[dict], key: str) -> str:
        return self._sdk(lambda: self.client.messages.batches.create(requests=entries)).id

    def find(self, *, key: str, since: dt.datetime, count: int, claimed: set[str]) -> str | None:
        candidates = []
        for batch in self._sdk(lambda: self.client.messages.batches.list(limit=100)).data:
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if batch.id not in claimed and batch.created_at >= since - CLOCK_ALLOWANCE and total == count:
                candidates.append(batch)
        return min(candidates, key=lambda b: b.created_at).id if candidates else None

    def state(self, batch_id: str) -> BatchState:
        batch = self._sdk(lambda: self.client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump()
        if batch.processing_status != "ended":
            return BatchState(IN_PROGRESS, counts=counts)
        if batch.cancel_initiated_at is not None:
            return BatchState(ENDED, CANCELED, counts)
        return BatchState(ENDED, EXPIRED if counts.get("expired") else COMPLETED, counts)

    def results(self, batch_id: str) -> dict[str, Completion | str]:
        out: dict[str, Completion | str] = {}
        for item in self._sdk(lambda: list(self.client.messages.batches.results(batch_id))):
            result = item.result
            if result.type == "succeeded":
                out[item.custom_id] = self.provider.completion_of(result.message)
            elif result.type == "errored":
                error = getattr(result.error, "error", None)
                out[item.custom_id] = (f"Anthropic batch request failed: "
                                       f"{getattr(error, 'message', None) or getattr(error, 'type', 'error')}")
            # expired and canceled requests have no result: the job's fallback applies
        return out

    def cancel(self, batch_id: str) -> None:
        self._sdk(lambda: self.client.messages.batches.cancel(batch_id))
