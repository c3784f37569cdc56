"""OpenAI's Batch API: a JSONL file (`files.create(purpose="batch")`) of chat completions requests, then
`batches.create` with the submission key in its metadata; results in the output file (answered requests)
and the error file (failed, expired, canceled ones), mapped back by custom_id."""

from __future__ import annotations

import datetime as dt
import json

from analysis.engine.providers.base import Completion, GenerationParams, Prompt
from analysis.engine.providers.openai_provider import OpenAIProvider
from analysis.engine.providers.provider_batches import (
    CANCELED, COMPLETED, ENDED, EXPIRED, FAILED, IN_PROGRESS, KEY_FIELD, BatchState, ProviderBatches,
)

ENDPOINT = "/v1/chat/completions"
_ENDED = {"completed": COMPLETED, "expired": EXPIRED, "failed": FAILED, "cancelled": CANCELED}


class OpenAIBatches(ProviderBatches):
    name = "openai"
    max_requests = 50_000
    provider: OpenAIProvider

    def build(self, *, custom_id: str, model: str, prompt: Prompt, params: GenerationParams) -> dict:
        body = self.provider.request_body(model=model, prompt=prompt, params=params)
        return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}

    def create(self, *, model: str, entries: list[dict], key: str) -> str:
        data = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in entries).encode()
        upload = self._sdk(lambda: self.client.files.create(file=(f"{key}.jsonl", data), purpose="batch"))
        batch = self._sdk(lambda: self.client.batches.create(
            input_file_id=upload.id, endpoint=ENDPOINT, completion_window="24h", metadata={KEY_FIELD: key}))
        return batch.id

    def find(self, *, key: str, since: dt.datetime, count: int, claimed: set[str]) -> str | None:
        for batch in self._sdk(lambda: self.client.batches.list(limit=100)).data:
            if (batch.metadata or {}).get(KEY_FIELD) == key:
                return batch.id
        return None

    def state(self, batch_id: str) -> BatchState:
        batch = self._sdk(lambda: self.client.batches.retrieve(batch_id))
        counts = batch.request_counts.model_dump() if batch.request_counts else None
        if batch.status in _ENDED:
            return BatchState(ENDED, _ENDED[batch.status], counts)
        return BatchState(IN_PROGRESS, counts=counts)

    def results(self, batch_id: str) -> dict[str, Completion | str]:
        batch = self._sdk(lambda: self.client.batches.retrieve(batch_id))
        out: dict[str, Completion | str] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = self._sdk(lambda: self.client.files.content(file_id)).content
            for line in content.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                response, error = item.get("response") or {}, item.get("error")
                if error and error.get("code") in ("batch_expired", "batch_cancelled"):
                    continue  # no result: the job's fallback applies
                if response.get("status_code") == 200:
                    out[item["custom_id"]] = self.provider.completion_of(response["body"])
                else:
                    body = response.get("body") or {}
                    message = ((body.get("error") or {}).get("message") if isinstance(body, dict) else None) or error
                    out[item["custom_id"]] = f"OpenAI batch request failed ({response.get('status_code')}): {message}"
        return out

    def cancel(self, batch_id: str) -> None:
        self._sdk(lambda: self.client.batches.cancel(batch_id))
