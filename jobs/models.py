from __future__ import annotations

import uuid
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import ProtectedError, Value
from django.utils import timezone

from analysis.analyze import price_known
from analysis.engine.structured import stored_result
from analysis.engine.turns import speaker_stats


def keep_results_without_transcript(collector, field, sub_objs, using) -> None:
    """on_delete of Job.transcript_ref: a job whose transcript is deleted keeps its results and loses every copy
    of the text (its own, its turns' speakers and times, the requests of its provider batches), and says so
    (`transcript_deleted`; it cannot be retried). A job still queued or running protects its transcript:
    it would run on a text that is gone."""
    ids = [job.pk for job in sub_objs]
    jobs = Job.objects.filter(pk__in=ids)
    active = list(jobs.exclude(status__in=Job.FINAL_STATUSES).only("id", "status"))
    if active:
        raise ProtectedError("Jobs that are queued or running use this transcript.", set(active))
    for name, value in (("transcript_ref", None), ("transcript", ""), ("turns", Value([], models.JSONField())),
                        ("transcript_deleted", True)):
        collector.add_field_update(Job._meta.get_field(name), value, jobs)
    collector.add_field_update(BatchRequest._meta.get_field("entry"), Value({}, models.JSONField()),
                               BatchRequest.objects.filter(job_id__in=ids))


class Job(models.Model):
    """One analysis request. This row is the truth; the RQ job (same UUID) only delivers it."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        STARTED = "started"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELED = "canceled"

    FINAL_STATUSES = (Status.FINISHED, Status.FAILED, Status.CANCELED)

    class Kind(models.TextChoices):
        ANALYZE = "analyze"
        BATCH = "batch"
        ASK = "ask"  # one question across meetings (POST /api/v1/ask): its task ASK_TASK, the meetings in `scope`

    ASK_TASK = "answer"  # an ask job's one task: `results.answer` of its document

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column indexes where a composite below covers them (owner; status): every write of a job
    # that changes an indexed column updates every index of the table.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ANALYZE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    queue = models.CharField(max_length=20, default="default")
    provider = models.CharField(max_length=32)  # a provider or a named endpoint ([a-z0-9-]{1,32})
    model = models.CharField(max_length=100)
    profile_name = models.CharField(max_length=100, blank=True, default="")
    system_prompt = models.TextField(blank=True, default="")
    transcript = models.TextField()  # normalized (speaker turns, [hh:mm:ss] where known); "" once deleted
    # The stored transcript the job analyzes (every job has one: given as text, it is stored or found again).
    # The worker reads the job's own copy above, never this row. Null once the transcript is deleted.
    transcript_ref = models.ForeignKey("transcripts.Transcript", on_delete=keep_results_without_transcript,
                                       null=True, blank=True, related_name="jobs")
    transcript_deleted = models.BooleanField(default=False)
    # An ask job's meetings: {"given": the scope as sent (null: all of the owner's), "transcripts": [their ids]},
    # resolved at submit, so that a retry asks over the same meetings (those deleted since are left out). The
    # question is its task's prompt. Null for other jobs.
    scope = models.JSONField(null=True, blank=True)
    transcript_format = models.CharField(max_length=10, default="text")
    # The parsed turns of `transcript` ({index, speaker, start, end}; turn N is line N), what citations
    # point at (analysis/engine/turns.py).
    turns = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=35, blank=True, default="")  # BCP 47; empty: the transcript's
    # How its provider calls are sent (analysis/engine/processing.py): standard, flex or batch; and what a call its
    # mode cannot finish falls back to: standard (at the standard price) or fail.
    processing = models.CharField(max_length=10, default="standard")
    fallback = models.CharField(max_length=10, default="standard")
    # The models a task moves on to when its own cannot answer (analysis/engine/fallbacks.py), in order:
    # [{"provider", "model"}], as checked at submit (the job's, its profile's, or the server's MODEL_FALLBACKS).
    fallback_models = models.JSONField(default=list, blank=True)
    # Batch mode (jobs/worker/provider_batch_poller.py): waiting for provider batches with no worker (`started`, no heartbeat, so
    # the reconciler leaves it alone), since when (BATCH_MAX_WAIT counts from the first submission), and
    # whether the next claim continues the same attempt (a continuation delivery is not counted in attempts).
    awaiting_batch = models.BooleanField(default=False)
    batch_wait_started_at = models.DateTimeField(null=True, blank=True)
    batch_continuation = models.BooleanField(default=False)
    # Generation parameters given on the job (temperature, max_output_tokens).
    params = models.JSONField(default=dict, blank=True)
    reuse_results = models.BooleanField(default=True)
    max_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")

    attempts = models.PositiveIntegerField(default=0)  # deliveries to a worker
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    total_cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    # Provider calls that were in flight when a worker died: paid, result lost.
    lost_calls = models.PositiveIntegerField(default=0)
    # Provider calls of the current attempt now on the wire (RunHooks.on_call). Kept in
    # the row, not in Redis, so a FLUSHALL cannot hide calls lost with a dead worker.
    calls_in_flight = models.IntegerField(default=0)
    # Deliveries that do not count against JOB_MAX_ATTEMPTS (before a manual retry, graceful
    # hand-backs on worker shutdown): the limit applies to `attempts - attempts_base`.
    attempts_base = models.PositiveIntegerField(default=0)
    # The RQ worker that claimed the current attempt: after its run is over (its slot ended, its work horse
    # exited), only that worker may settle the row (a duplicate delivery elsewhere must not touch it).
    worker = models.CharField(max_length=200, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Share links of the report page (jobs/sharing.py): each is signed over the job and this nonce, so
    # rotating it (a revoke) ends every link at once; `share_expires_at` is the latest link's end (null: none).
    share_nonce = models.CharField(max_length=32, blank=True, default="")
    share_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="unique_idempotency_key_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def cost(self) -> Decimal:
        """total_cost once final (it is written as the job ends); before, its tasks' costs so far
        (`tasks_cost`, counted by jobs.selectors)."""
        return self.total_cost if self.is_final else self.tasks_cost

    @cached_property
    def price_unknown(self) -> bool:
        """Accepted under ALLOW_UNLISTED_MODELS, or an endpoint without prices: a cost of 0 means "unknown"."""
        return not price_known(self.provider, self.model)

    @property
    def speakers(self) -> list[dict]:
        """Per-speaker statistics of the transcript (analysis/engine/turns.py): no model call."""
        return speaker_stats(self.transcript)


class Task(models.Model):
    """One named question of a job, with its outcome, tokens and cost."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks", db_index=False)  # see Meta
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    prompt = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    output = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    # The provider error kind of a failed task (analysis/engine/providers/base.py: rate_limit, timeout, ...).
    error_kind = models.CharField(max_length=30, blank=True, default="")
    # The last failed try's message, kept when a retry then succeeded (why `tries` > `calls`).
    last_error = models.TextField(blank=True, default="")

    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    # Which prices the cost was computed with: the genai-prices version, and the first day of the dated price
    # that applied (null: the data's undated first price). Empty for an endpoint's or an unlisted model.
    price_version = models.CharField(max_length=20, blank=True, default="")
    price_date = models.DateField(null=True, blank=True)

    tries = models.PositiveIntegerField(default=0)  # provider calls including retries
    calls = models.PositiveIntegerField(default=0)  # successful provider calls
    chunks = models.PositiveIntegerField(default=1)
    reused = models.BooleanField(default=False)
    truncated = models.BooleanField(default=False)
    blocked = models.BooleanField(default=False)
    finish_reason = models.CharField(max_length=100, blank=True, default="")
    latency_s = models.FloatField(null=True, blank=True)
    # Hash of everything that determines the answer (for result reuse), for the model that answered.
    reuse_key = models.CharField(max_length=64, blank=True, default="")
    # The model that answered (the job's, or one of its fallback chain; a failed task: the last one it tried), and
    # those it moved away from: [{"provider", "model", "reason", "message"}] (reason: the error kind).
    provider = models.CharField(max_length=32, blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    fallback_from = models.JSONField(default=list, blank=True)

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        # job_id lookups use the unique constraints' indexes (job first); reuse_key is matched by equality
        # only, so a plain index (db_index=True would add a LIKE-pattern one too).
        indexes = [models.Index(fields=["reuse_key"], name="task_reuse_key")]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="unique_task_position"),
            models.UniqueConstraint(fields=["job", "name"], name="unique_task_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @cached_property
    def _stored(self) -> tuple[Any, dict]:
        return stored_result(self.prompt, self.output)

    @property
    def answer(self) -> Any:
        """What `results[name]` shows: the text, or a structured task's JSON value."""
        return self._stored[0]

    @property
    def report(self) -> dict:
        """A succeeded structured or cited task's citation counts and references (analysis/engine/structured.py)."""
        return self._stored[1] if self.status == self.Status.SUCCEEDED else {}


class WebhookDelivery(models.Model):
    """One callback of a job reaching a final state, with its delivery attempts.

    The body and the message id are fixed when the delivery is scheduled, so every
    retry sends the same signed message and the receiver can deduplicate on `webhook-id`.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=2000)
    message_id = models.CharField(max_length=64, unique=True)
    payload = models.TextField()  # the job document (JSON) as signed
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField(null=True, blank=True)  # HTTP status of the last attempt
    last_error = models.TextField(blank=True, default="")
    # When to try next; None once delivered or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.job_id} → {self.url} ({self.attempts} attempt(s))"


# --- batch processing (jobs/worker/provider_batch_poller.py) -------------------------------------------------------

class ProviderBatch(models.Model):
    """One batch submitted to a provider's batch API, carrying the calls of one or many batch-mode jobs.

    `key` is committed before the create call and `provider_batch_id` stored right after it returns: a
    worker killed in between leaves a `submitting` row that the poller resolves through the key
    (analysis/engine/providers/provider_batches.py), so a batch is never lost nor submitted twice.
    """

    class Status(models.TextChoices):
        SUBMITTING = "submitting"  # key committed; the create call not known to have returned
        SUBMITTED = "submitted"
        ENDED = "ended"
        ABANDONED = "abandoned"  # never created (refused, or not found by its key): its calls went back

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=100)
    key = models.CharField(max_length=64, unique=True)
    provider_batch_id = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SUBMITTING, db_index=True)
    outcome = models.CharField(max_length=12, blank=True, default="")  # completed, expired, failed, canceled
    submitter = models.CharField(max_length=200, blank=True, default="")  # the worker whose poller created it
    request_count = models.PositiveIntegerField(default=0)
    cancel_sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)  # the key's commit: its calls' price date
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")  # why it was never created (abandoned)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider} batch {self.provider_batch_id or self.key} ({self.status})"


class BatchRequest(models.Model):
    """One provider call of a batch-mode job, from its registration to its result (or its lack of one)."""

    class Status(models.TextChoices):
        PENDING = "pending"  # registered, in no batch yet
        SUBMITTED = "submitted"  # in a provider batch
        SUCCEEDED = "succeeded"  # answered: `result`
        FAILED = "failed"  # the batch answered it with an error, or the batch failed: fallback
        EXPIRED = "expired"  # the batch expired (or BATCH_MAX_WAIT passed) without an answer: fallback
        DISCARDED = "discarded"  # its job was canceled or deleted

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # hex: the custom id
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, related_name="batch_requests")
    task_name = models.CharField(max_length=200)
    call_key = models.CharField(max_length=64)  # analysis.engine.provider_batch_calls.call_key: the same call across replays
    entry = models.JSONField()  # the provider's request, as its batch API takes it
    batch = models.ForeignKey(ProviderBatch, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="requests")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    result = models.JSONField(null=True, blank=True)  # the Completion: text, usage, finish_reason, ...
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["job", "call_key"], name="unique_batch_call_per_job")]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.status})"
