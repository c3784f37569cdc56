"""Processing modes: how a job's provider calls are sent, and what they cost.

- `standard`: one synchronous request per call, at the standard price (the default).
- `flex`: synchronous too, on the provider's best-effort flex tier (OpenAI `service_tier="flex"`, Gemini
  `ServiceTier.FLEX`), at the flex price, with the longer timeout flex needs (FLEX_REQUEST_TIMEOUT). A
  capacity refusal (429) is retried with backoff; when the task's retry budget is spent, the job's fallback
  applies. Anthropic has no flex tier.
- `batch`: the calls go to the provider's batch API (OpenAI Batch, Anthropic Message Batches, Gemini Batch
  Mode) and come back within hours, at the batch price (jobs/worker/provider_batch_poller.py runs them).

`fallback` says what happens to a call its mode cannot finish (flex refused for good, a batch expired or
failed, BATCH_MAX_WAIT passed): `standard` sends it as a standard call at the standard price, `fail` fails
its task and says why. Never a silent standard price: a mode the model has no price for is refused at
submit.

Pure analysis: no Django models.
"""

from __future__ import annotations

import datetime as dt

from analysis.engine.model_info import ModelInfo

STANDARD = "standard"
FLEX = "flex"
BATCH = "batch"
PROCESSING_MODES = (STANDARD, FLEX, BATCH)

FALLBACK_STANDARD = "standard"
FALLBACK_FAIL = "fail"
FALLBACKS = (FALLBACK_STANDARD, FALLBACK_FAIL)

# Which providers have which mode at all (a named OpenAI-compatible endpoint has neither).
MODE_PROVIDERS = {
    FLEX: ("openai", "gemini"),
    BATCH: ("openai", "anthropic", "gemini"),
}
_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}


def mode_refusal(*, provider: str, info: ModelInfo, processing: str, when: dt.datetime | None = None) -> str | None:
    """Why `processing` cannot run for this provider and model (None: it can), as a sentence for a 400."""
    if processing == STANDARD:
        return None
    if processing not in PROCESSING_MODES:
        return f"Unknown processing mode {processing!r}; choose one of: {', '.join(PROCESSING_MODES)}."
    if provider not in MODE_PROVIDERS[processing]:
        label = _LABELS.get(provider, provider)
        offered = " and ".join(_LABELS[p] for p in MODE_PROVIDERS[processing])
        return f"{label} offers no {processing} processing ({offered} do); use standard."
    if not info.listed or not info.offers(processing, when):
        return (f"{info.name} has no {processing} price in the price data, so it is not offered in {processing} "
                f"processing; use standard, or a model with a {processing} price (GET /api/v1/models).")
    return None


def modes_offered(*, provider: str, info: ModelInfo) -> list[str]:
    """Every processing mode this model may run in now, standard first."""
    return [mode for mode in PROCESSING_MODES if mode_refusal(provider=provider, info=info, processing=mode) is None]
