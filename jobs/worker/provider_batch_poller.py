"""Batch mode: a job's provider calls sent through the providers' batch APIs, at the batch price.

A batch job runs in rounds. Each round is an ordinary delivery of the job to a worker slot, which replays
the analysis (analysis/engine/provider_batch_calls.py): every call answered by a provider batch is answered from its stored
result, every call not seen before is registered (a `BatchRequest` row, its provider request built), and
the run ends at once: the job stays `started` with no worker and no heartbeat (`awaiting_batch`), and the
slot is free. Single-call tasks take one round, a map-reduce task one round per level, a repair try one more.

The poller (`BatchPollerThread`, in every worker, one at a time through a Redis lock, never in a slot) does
the rest, each pass:

1. a `submitting` batch whose submitter is gone is looked up by its submission key: found, its id is stored;
   not found, its calls go back to `pending` (never lost, never submitted twice);
2. the calls of canceled and deleted jobs are discarded (calls already in a batch counted lost on their
   job), and a batch none of whose calls is wanted any more is canceled at the provider;
3. jobs waiting longer than BATCH_MAX_WAIT get their unanswered calls expired (then their fallback applies);
4. pending calls are submitted, grouped by provider and model (one batch carries the calls of many jobs,
   up to BATCH_MAX_REQUESTS and the provider's limit): the key committed before the create call, the
   batch id right after it;
5. ended batches are collected: each call's result stored with a conditional update (a poller whose lock
   expired meanwhile cannot store it twice); a call without a result (expired, failed, canceled batch, a
   request the batch answered with an error) is marked so, and the job's fallback applies on its replay;
6. a waiting job none of whose calls is still pending or in a batch is delivered again (a continuation: the
   same attempt, not counted in `attempts`).

Costs are billed when the replay stores the task's outcome (once, fenced like any outcome), every call at
the batch price in force when its batch's key was committed.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from analysis.clients import batch_api
from analysis.engine.provider_batch_calls import AwaitingBatch, BatchAnswer, call_key
from analysis.engine.providers.base import Completion, GenerationParams, Prompt, ProviderError
from analysis.engine.providers.provider_batches import COMPLETED, ENDED, EXPIRED, FAILED
from analysis.engine.providers.usage import Usage
from jobs.models import BatchRequest, Job, ProviderBatch
from jobs.services import job_enqueue
from jobs.worker.lifecycle import job_calls_lost
from jobs.worker.periodic import PeriodicPass
from jobs.worker.reconcile import workers_heartbeating

logger = logging.getLogger(__name__)

LOCK_KEY = "scriptripper:batch-poller:lock"
LIVE = (BatchRequest.Status.PENDING, BatchRequest.Status.SUBMITTED)
NO_RESULT = (BatchRequest.Status.FAILED, BatchRequest.Status.EXPIRED)


# --- the worker side: one round of a job ------------------------------------------------------------

def completion_json(completion: Completion) -> dict:
    return {"text": completion.text, "usage": completion.usage.as_dict(), "finish_reason": completion.finish_reason,
            "truncated": completion.truncated, "blocked": completion.blocked}


def completion_from_json(data: dict) -> Completion:
    return Completion(text=data["text"], usage=Usage(**data["usage"]), finish_reason=data.get("finish_reason", ""),
                      truncated=data.get("truncated", False), blocked=data.get("blocked", False))


class JobBatchCalls:
    """analysis.engine.provider_batch_calls.BatchCalls for one round of one job: answers from the job's batch requests as read
    at the round's start, and the calls this round registers (`new`, stored by job_batch_wait)."""

    def __init__(self, *, job: Job, rows: list[dict]) -> None:
        self.job = job
        self.rows = {row["call_key"]: row for row in rows}
        self.new: list[BatchRequest] = []
        self.revived: list[str] = []  # call keys of discarded requests to send again (a retried job)
        self._seen: set[str] = set()
        self.awaiting = False
        self._lock = threading.Lock()
        self._api = None

    def answer(self, task: str, prompt: Prompt, params: GenerationParams) -> BatchAnswer | None:
        key = call_key(task, prompt, params)
        row = self.rows.get(key)
        status = row["status"] if row else None
        if status == BatchRequest.Status.SUCCEEDED:
            return BatchAnswer(completion=completion_from_json(row["result"]), priced_at=row["priced_at"])
        if status in NO_RESULT:
            if self.job.fallback == "standard":
                return None  # the Runner sends it now, standard, at the standard price
            raise ProviderError(self.job.provider, f"batch_{status}",
                                f"{row['error'] or 'The provider batch gave no answer.'} (the job's fallback is fail)")
        if status in LIVE:
            self.awaiting = True
            raise AwaitingBatch("batch")
        with self._lock:
            if key not in self._seen:
                self._seen.add(key)
                if status == BatchRequest.Status.DISCARDED:
                    self.revived.append(key)
                else:
                    request_id = uuid.uuid4()
                    if self._api is None:
                        self._api = batch_api(self.job.provider)
                    entry = self._api.build(custom_id=request_id.hex, model=self.job.model, prompt=prompt,
                                            params=params)
                    self.new.append(BatchRequest(id=request_id, job_id=self.job.id, task_name=task, call_key=key,
                                                 entry=entry))
            self.awaiting = True
        raise AwaitingBatch("batch")

    @property
    def waiting(self) -> bool:
        """Whether a task of this round waits for a batch (a call registered now, or still in a batch)."""
        return self.awaiting


def job_batch_calls(*, job: Job) -> JobBatchCalls:
    rows = list(BatchRequest.objects.filter(job_id=job.id).values(
        "call_key", "status", "result", "error", priced_at=F("batch__created_at")))
    return JobBatchCalls(job=job, rows=rows)


def job_batch_wait(*, job: Job, calls: JobBatchCalls) -> bool:
    """End this round: the calls it registered stored, the job left `started` with no worker and no
    heartbeat until its batches answer. Fenced by the attempt (False: the round was given up meanwhile)."""
    with transaction.atomic():
        now = timezone.now()
        if not Job.objects.filter(id=job.id, attempts=job.attempts, status=Job.Status.STARTED).update(
                awaiting_batch=True, worker="", heartbeat_at=None, batch_wait_started_at=Coalesce(
                    F("batch_wait_started_at"), now)):
            return False
        BatchRequest.objects.bulk_create(calls.new)
        if calls.revived:
            BatchRequest.objects.filter(job_id=job.id, call_key__in=calls.revived).update(
                status=BatchRequest.Status.PENDING, batch=None, result=None, error="")
    logger.info("job waits for batches", extra={"job_id": str(job.id), "calls": len(calls.new) + len(calls.revived)})
    return True


# --- the poller --------------------------------------------------------------------------------

def batches_poll(*, worker: str) -> dict[str, int]:
    """One pass of the poller (see the module docstring); what it did, by step."""
    report = {"recovered": _recover_submitting(worker=worker), "discarded": _discard_unwanted(),
              "expired": _expire_overdue(), "submitted": _submit_pending(worker=worker),
              "collected": _collect_ended(), "continued": _continue_ready()}
    if any(report.values()):
        logger.info("batch poller: %s", report)
    return report


def _recover_submitting(*, worker: str) -> int:
    rows = list(ProviderBatch.objects.filter(status=ProviderBatch.Status.SUBMITTING))
    if not rows:
        return 0
    alive = workers_heartbeating({row.submitter for row in rows if row.submitter and row.submitter != worker})
    # A live submitter may still be inside its create call (its poller lock expired): left to it, for as
    # long as a request can take.
    young = timezone.now() - timedelta(seconds=settings.PROVIDER_REQUEST_TIMEOUT + 60)
    recovered = 0
    for row in rows:
        if row.submitter in alive and row.created_at > young:
            continue
        claimed = set(ProviderBatch.objects.filter(provider=row.provider).exclude(provider_batch_id="")
                      .values_list("provider_batch_id", flat=True))
        try:
            found = batch_api(row.provider).find(key=row.key, since=row.created_at, count=row.request_count,
                                                 claimed=claimed)
        except ProviderError as exc:
            logger.warning("batch poller: cannot look up batch %s yet (%s)", row.key, exc.message)
            continue
        if found:
            ProviderBatch.objects.filter(id=row.id, status=ProviderBatch.Status.SUBMITTING).update(
                status=ProviderBatch.Status.SUBMITTED, provider_batch_id=found, submitted_at=timezone.now())
            logger.warning("batch poller: batch %s of a dead submitter found by its key: %s", row.key, found)
        else:
            _abandon(row, "not found by its submission key after its submitter died: its calls are sent again")
        recovered += 1
    return recovered


def _abandon(row: ProviderBatch, reason: str) -> None:
    """A batch that was never created: its calls go back to pending, for the next submission."""
    with transaction.atomic():
        if ProviderBatch.objects.filter(id=row.id, status=ProviderBatch.Status.SUBMITTING).update(
                status=ProviderBatch.Status.ABANDONED, error=reason[:2000]):
            BatchRequest.objects.filter(batch_id=row.id, status=BatchRequest.Status.SUBMITTED).update(
                status=BatchRequest.Status.PENDING, batch=None)


def _discard_unwanted() -> int:
    """Calls of jobs that no longer wait (canceled, deleted, finished otherwise) are discarded; those in a
    batch are counted lost on their job; a batch nobody waits on is canceled at the provider."""
    unwanted = BatchRequest.objects.filter(status__in=LIVE).filter(
        Q(job__isnull=True) | ~Q(job__status=Job.Status.STARTED))
    lost = dict(unwanted.filter(status=BatchRequest.Status.SUBMITTED, job__isnull=False)
                .values_list("job_id").annotate(n=Count("id")))
    discarded = 0
    with transaction.atomic():
        discarded = unwanted.update(status=BatchRequest.Status.DISCARDED)
        for job_id, count in lost.items():
            job_calls_lost(job_id=job_id, calls=count)
    for row in ProviderBatch.objects.filter(status=ProviderBatch.Status.SUBMITTED, cancel_sent=False).exclude(
            requests__status__in=LIVE).exclude(provider_batch_id=""):
        try:
            batch_api(row.provider).cancel(row.provider_batch_id)
        except ProviderError as exc:
            logger.warning("batch poller: cancel of %s failed (%s)", row.provider_batch_id, exc.message)
            continue
        ProviderBatch.objects.filter(id=row.id).update(cancel_sent=True)
        logger.info("batch poller: canceled %s batch %s (no job waits on it)", row.provider, row.provider_batch_id)
    return discarded


def _expire_overdue() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.BATCH_MAX_WAIT)
    overdue = Job.objects.filter(status=Job.Status.STARTED, awaiting_batch=True, batch_wait_started_at__lt=cutoff)
    return BatchRequest.objects.filter(job__in=overdue, status__in=LIVE).update(
        status=BatchRequest.Status.EXPIRED,
        error=f"No answer from the provider batch within BATCH_MAX_WAIT ({settings.BATCH_MAX_WAIT:g} s).")


def _submit_pending(*, worker: str) -> int:
    pending = (BatchRequest.objects.filter(status=BatchRequest.Status.PENDING, batch__isnull=True,
                                           job__status=Job.Status.STARTED)
               .order_by("created_at").values_list("id", "job__provider", "job__model"))
    groups: dict[tuple[str, str], list[uuid.UUID]] = defaultdict(list)
    for request_id, provider, model in pending:
        groups[(provider, model)].append(request_id)
    submitted = 0
    for (provider, model), ids in groups.items():
        api = batch_api(provider)
        size = min(settings.BATCH_MAX_REQUESTS, api.max_requests)
        for start in range(0, len(ids), size):
            submitted += _submit_one(api=api, provider=provider, model=model, ids=ids[start:start + size],
                                     worker=worker)
    return submitted


def _submit_one(*, api: Any, provider: str, model: str, ids: list[uuid.UUID], worker: str) -> int:
    # The key, and which calls it carries, are committed before the provider hears of the batch: a worker
    # killed during the create call leaves this row for _recover_submitting to resolve by the key.
    with transaction.atomic():
        rows = list(BatchRequest.objects.select_for_update(skip_locked=True)
                    .filter(id__in=ids, status=BatchRequest.Status.PENDING, batch__isnull=True)
                    .values_list("id", "entry"))
        if not rows:
            return 0
        row = ProviderBatch.objects.create(provider=provider, model=model, key=f"sr-{uuid.uuid4().hex}",
                                           submitter=worker, request_count=len(rows))
        BatchRequest.objects.filter(id__in=[request_id for request_id, _ in rows]).update(
            batch=row, status=BatchRequest.Status.SUBMITTED)
    try:
        provider_batch_id = api.create(model=model, entries=[entry for _, entry in rows], key=row.key)
    except ProviderError as exc:
        # Refused (capacity, a 429; or a bad request): nothing was created; the calls go back to pending
        # and the next pass tries again.
        logger.warning("batch poller: %s refused a batch of %d calls (%s); next pass retries",
                       provider, len(rows), exc.message)
        _abandon(row, exc.message)
        return 0
    ProviderBatch.objects.filter(id=row.id, status=ProviderBatch.Status.SUBMITTING).update(
        status=ProviderBatch.Status.SUBMITTED, provider_batch_id=provider_batch_id, submitted_at=timezone.now())
    logger.info("batch poller: submitted %s batch %s (%d calls)", provider, provider_batch_id, len(rows))
    return len(rows)


def _collect_ended() -> int:
    collected = 0
    for row in ProviderBatch.objects.filter(status=ProviderBatch.Status.SUBMITTED).exclude(provider_batch_id=""):
        api = batch_api(row.provider)
        try:
            state = api.state(row.provider_batch_id)
            if state.state != ENDED:
                continue
            results = api.results(row.provider_batch_id) if state.outcome != FAILED else {}
        except ProviderError as exc:
            logger.warning("batch poller: %s batch %s not readable now (%s)", row.provider, row.provider_batch_id,
                           exc.message)
            continue
        for request_id in BatchRequest.objects.filter(batch_id=row.id, status=BatchRequest.Status.SUBMITTED) \
                .values_list("id", flat=True):
            result = results.get(request_id.hex)
            if isinstance(result, Completion):
                fields = {"status": BatchRequest.Status.SUCCEEDED, "result": completion_json(result)}
            elif isinstance(result, str):
                fields = {"status": BatchRequest.Status.FAILED, "error": result[:2000]}
            else:
                status = BatchRequest.Status.EXPIRED if state.outcome in (EXPIRED, COMPLETED) else \
                    BatchRequest.Status.FAILED
                fields = {"status": status, "error": f"The {row.provider} batch {row.provider_batch_id} "
                                                     f"{state.outcome} without an answer to this call."}
            # Conditional: stored once, whichever poller gets here first.
            collected += BatchRequest.objects.filter(id=request_id, status=BatchRequest.Status.SUBMITTED) \
                .update(**fields)
        ProviderBatch.objects.filter(id=row.id, status=ProviderBatch.Status.SUBMITTED).update(
            status=ProviderBatch.Status.ENDED, outcome=state.outcome, ended_at=timezone.now())
    return collected


def _continue_ready() -> int:
    """Deliver again every waiting job that has nothing left in flight."""
    ready = list(Job.objects.filter(status=Job.Status.STARTED, awaiting_batch=True)
                 .exclude(batch_requests__status__in=LIVE).values_list("id", flat=True))
    continued = 0
    for job_id in ready:
        with transaction.atomic():
            if Job.objects.filter(id=job_id, status=Job.Status.STARTED, awaiting_batch=True).update(
                    status=Job.Status.QUEUED, awaiting_batch=False, batch_continuation=True):
                transaction.on_commit(lambda job_id=job_id: job_enqueue(job_id=job_id))
                continued += 1
    return continued


class BatchPollerThread(PeriodicPass):
    """The batch poller inside a worker: every BATCH_POLL_INTERVAL_SECONDS, one worker at a time. On a database
    connection of its own, never one of the slots' (a pass waits on provider HTTP calls)."""

    label = "batch poller"
    lock_key = LOCK_KEY

    def __init__(self, *, worker_name: str) -> None:
        super().__init__(name="scriptripper-batch-poller", worker_name=worker_name)

    def interval(self) -> float:
        return settings.BATCH_POLL_INTERVAL_SECONDS

    def first_delay(self, interval: float) -> float:
        # One interval after start (jittered), not at once: batch work waits hours anyway, and a short-lived
        # worker (a burst run draining the queues) then leaves the polling to the others.
        return interval * random.uniform(0.9, 1.1)

    def run_pass(self) -> None:
        batches_poll(worker=self.worker_name)
