"""What the Runner needs from batch mode, without knowing how batches are run (jobs/worker/provider_batch_poller.py does).

In batch mode a job's run is replayed once per batch round: every call whose answer came back in a provider
batch is answered from it at once (`BatchCalls.answer`), and every call not seen before is registered for the
next batch and stops its task for this round (`AwaitingBatch`). A map-reduce task thus takes one round per
level (all the map calls of a level are registered together), and a repair try one more round.

Pure analysis: no Django models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Protocol

from analysis.engine.execution import Stopped
from analysis.engine.providers.base import Completion, GenerationParams, Prompt


class AwaitingBatch(Stopped):
    """This task's next call goes out in a provider batch: the task stops for this round, nothing of it is
    stored, and the run is replayed when the batch's results are in. A Stopped, so that the Runner abandons
    the task exactly as it does on a stop (no outcome, no on_done)."""


@dataclass(frozen=True)
class BatchAnswer:
    completion: Completion
    priced_at: dt.datetime  # when its batch was submitted: the batch price in force then bills it


class BatchCalls(Protocol):
    def answer(self, task: str, prompt: Prompt, params: GenerationParams) -> BatchAnswer | None:
        """The call's answer from a batch; None: the batch could not answer it and the job's fallback is
        standard (send it now). Raises AwaitingBatch (registered for the next batch) or ProviderError (the
        batch could not answer it and the fallback is fail)."""


def call_key(task: str, prompt: Prompt, params: GenerationParams) -> str:
    """What identifies one call of a task across replays: the same task, prompt and parameters."""
    body = [task, prompt.system, prompt.document, prompt.instruction, prompt.cache_key, asdict(params)]
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
