"""The providers' batch APIs behind one interface (jobs/worker/provider_batch_poller.py drives them).

A request is built once, when its call is registered (`BatchAPI.build`: a JSON-ready entry, stored with the
request row), and sent later in a batch with many others (`create`), which carries a submission key where the
provider takes one: OpenAI in the batch's `metadata`, Gemini as its `display_name`. Anthropic's Message
Batches take neither: `find` recognises our batch as the one created after the key was committed, not claimed
by another submission of ours, with our request count (one submission at a time: the poller's lock).

Results come back mapped by custom id (Gemini: the `metadata` each inline request carries) as a Completion,
or as an error message for a request the batch answered with an error; a request missing from the results
(expired, canceled) has no entry. Providers know nothing of Django models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from analysis.engine.providers.base import Completion, GenerationParams, Prompt, Provider

T = TypeVar("T")

# Where each provider's batch state lands: still running, or ended with an outcome.
IN_PROGRESS = "in_progress"
ENDED = "ended"
COMPLETED, EXPIRED, FAILED, CANCELED = "completed", "expired", "failed", "canceled"
KEY_FIELD = "scriptripper_key"  # OpenAI metadata key of the submission key


@dataclass(frozen=True)
class BatchState:
    state: str  # IN_PROGRESS or ENDED
    outcome: str = ""  # COMPLETED, EXPIRED, FAILED or CANCELED once ended
    counts: dict | None = None


class BatchAPI(Protocol):
    name: str
    max_requests: int  # the provider's own limit per batch

    def build(self, *, custom_id: str, model: str, prompt: Prompt, params: GenerationParams) -> dict: ...

    def create(self, *, model: str, entries: list[dict], key: str) -> str: ...

    def find(self, *, key: str, since: dt.datetime, count: int, claimed: set[str]) -> str | None: ...

    def state(self, batch_id: str) -> BatchState: ...

    def results(self, batch_id: str) -> dict[str, Completion | str]: ...

    def cancel(self, batch_id: str) -> None: ...


class SdkProvider(Provider, Protocol):
    """What a batch adapter uses of its provider, besides the provider's own request builders."""

    client: Any

    def sdk_calls(self) -> AbstractContextManager[None]: ...


class ProviderBatches:
    """What every adapter shares: the provider's own SDK client (its key, base URL, timeout), and the SDK's
    exceptions raised as ProviderError exactly as the provider's standard calls raise them."""

    def __init__(self, provider: SdkProvider) -> None:
        self.provider = provider
        self.client = provider.client

    def _sdk(self, call: Callable[[], T]) -> T:
        with self.provider.sdk_calls():
            return call()


BATCH_PROVIDERS = ("openai", "anthropic", "gemini")
