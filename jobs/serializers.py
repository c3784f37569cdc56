"""The job endpoints' shapes: input serializers (each field on its own; jobs/submission.py does the rest) and
output serializers, the one source of every job response, of the webhook body and of the OpenAPI schema.

Unknown input fields are ignored (documented in README). The transcript may arrive as text (plain, SRT or
WebVTT), as a list of segments, or as an uploaded file (multipart).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.clients import provider_error
from analysis.engine.processing import FALLBACKS, PROCESSING_MODES
from analysis.engine.providers.usage import USAGE_KEYS
from analysis.engine.transcripts import FORMATS
from analysis.serializers import PriceNoteField, validate_language_tag, validate_provider_name
from jobs.input_fields import BatchTasksField, SegmentsField, StrictCharField, TasksField, no_nul
from jobs.models import Job, Task
from jobs.monitoring import QUEUE_REGISTRIES
from scriptripper.output_fields import BlankAsNullCharField, MoneyField, OptionalBooleanField, RoundedFloatField

QUEUED_MESSAGE = "Job queued for processing"


# --- input -----------------------------------------------------------------------------------------

class JobOptionsSerializer(serializers.Serializer):
    """Fields shared by analyze, batch and estimate: the transcript in any shape, provider, model, options.

    Exactly one of `transcript` (text, SRT or WebVTT; `format` names it, else it is detected),
    `segments` or `file` (multipart upload: .txt, .srt, .vtt, or .json segments).
    """

    transcript = StrictCharField(trim_whitespace=False, allow_blank=True, required=False)
    format = serializers.ChoiceField(choices=FORMATS, required=False,
                                     help_text="the transcript's format; detected when absent")
    segments = SegmentsField(required=False, help_text='[{"speaker"?, "start"?, "end"?, "text"}, ...]')
    file = serializers.FileField(required=False, allow_empty_file=False,
                                 help_text="multipart upload: .txt, .srt, .vtt, or .json (a segments list)")
    provider = StrictCharField(required=False)
    model = StrictCharField(required=False, max_length=100)
    system_prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    max_output_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, allow_null=True)
    max_cost = serializers.DecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=6, min_value=0, coerce_to_string=False,
        help_text="USD. Refused at submit (400) if the job's lowest estimated cost is above it; "
                  "while running, no further task is started once the job's real cost reaches it.")
    reuse = serializers.BooleanField(
        required=False, default=True,
        help_text="reuse the output of an identical task of yours (same transcript, provider, model, system prompt, "
                  "prompt and parameters) finished within RESULT_REUSE_TTL_SECONDS, at no cost; false: always call")
    language = StrictCharField(
        required=False, allow_blank=True, max_length=35,
        help_text="BCP 47 tag (en, pt-BR) of the language every answer is written in; absent: the transcript's")
    callback_url = StrictCharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="http(s) URL called with the job document (Standard Webhooks signature) when the job ends")
    processing = serializers.ChoiceField(
        choices=PROCESSING_MODES, required=False,
        help_text="standard (default; `low` jobs: LOW_QUEUE_PROCESSING), flex (OpenAI and Gemini's best-effort tier, "
                  "synchronous, at the flex price) or batch (the provider's batch API: results within hours at the "
                  "batch price); a mode the provider or model does not offer is a 400")
    fallback = serializers.ChoiceField(
        choices=FALLBACKS, required=False,
        help_text="what a call its processing mode cannot finish does (flex refused, batch expired or failed, "
                  "BATCH_MAX_WAIT passed): standard (sent again at the standard price; the default) or fail")

    def validate_provider(self, value: str) -> str:
        # Checked here, with the other fields' errors; a profile's default provider is checked by the service.
        value = value.strip().lower()
        if (problem := provider_error(value)) is not None:
            raise serializers.ValidationError(problem)
        return value

    def validate_language(self, value: str) -> str:
        return validate_language_tag(value)

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(f"is longer than {settings.MAX_SYSTEM_PROMPT_CHARS} characters")
        return no_nul(value)


class AnalyzeSerializer(JobOptionsSerializer):
    """analyze (and estimate): the tasks as {name: prompt}, or the name or id of a saved profile."""

    tasks = TasksField(required=False)
    profile = StrictCharField(required=False, max_length=100, help_text="a profile's name or id, instead of tasks")
    structured = serializers.BooleanField(
        required=False, default=True,
        help_text="with a profile: false asks its tasks in their free-text wording, without their schemas")


class BatchSerializer(JobOptionsSerializer):
    """batch: tasks as a list, [{"task_name", "prompt"}] (the analyze_batch_task shape of the contract)."""

    tasks = BatchTasksField()


class JobListFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/v1/jobs`; a malformed value is a 400, never silently ignored."""

    status = serializers.ChoiceField(choices=Job.Status.values, required=False)
    provider = serializers.CharField(required=False, max_length=32,
                                     help_text="gemini, openai, anthropic or a configured endpoint's name")
    model = serializers.CharField(required=False, max_length=100)
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601; jobs created at or after")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601; jobs created before")

    def validate_provider(self, value: str) -> str:
        return validate_provider_name(value)

    def validate(self, attrs):
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise serializers.ValidationError({"created_before": ["must be later than created_after"]})
        return attrs


# --- output: the job document (GET /api/v1/jobs/{id}, the webhook body, `analyze --json`) ----------
# Rendered from a Job read by jobs.documents.job_with_tasks (its tasks in `task_list`, with their counts).

class JobAcceptedSerializer(serializers.Serializer):
    job_id = serializers.UUIDField(source="id")
    status = serializers.CharField()
    message = serializers.SerializerMethodField()

    def get_message(self, job: Job) -> str:
        return QUEUED_MESSAGE


class JobProgressSerializer(serializers.Serializer):
    tasks_done = serializers.IntegerField()
    tasks_total = serializers.IntegerField()


UsageSerializer = type("UsageSerializer", (serializers.Serializer,), {
    "__doc__": "Tokens by the rate they are billed at; none counted twice.",
    **{key: serializers.IntegerField() for key in USAGE_KEYS}})


class TaskMetadataSerializer(serializers.Serializer):
    cost = MoneyField()
    usage = UsageSerializer(source="*")
    tries = serializers.IntegerField(help_text="provider calls including retries")
    calls = serializers.IntegerField(help_text="successful provider calls (more than one when chunked)")
    chunks = serializers.IntegerField()
    reused = serializers.BooleanField()
    truncated = serializers.BooleanField()
    blocked = serializers.BooleanField()
    finish_reason = serializers.CharField()
    latency_s = RoundedFloatField(digits=3)
    last_error = BlankAsNullCharField(help_text="the last failed try's message, kept when a retry then succeeded")
    price_version = BlankAsNullCharField()
    price_date = serializers.DateField(allow_null=True)
    # Structured and cited tasks only (analysis/engine/structured.py).
    citations_checked = serializers.IntegerField(source="report.citations_checked", required=False)
    citations_rejected = serializers.IntegerField(source="report.citations_rejected", required=False)
    times_rejected = serializers.IntegerField(source="report.times_rejected", required=False)
    citation_problems = serializers.ListField(child=serializers.CharField(), source="report.citation_problems",
                                              required=False, help_text="the first few rejections, why")
    references = serializers.ListField(child=serializers.JSONField(), source="report.references", required=False)


class JobMetadataSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    total_cost = MoneyField(source="tasks_cost", help_text="USD")
    usage = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    lost_calls = serializers.IntegerField(help_text="calls in flight when a worker died: paid, answer lost")
    price_unknown = OptionalBooleanField()
    note = PriceNoteField()

    @extend_schema_field(UsageSerializer)
    def get_usage(self, job: Job) -> dict:
        return UsageSerializer({key: sum(getattr(task, key) for task in job.task_list) for key in USAGE_KEYS}).data

    @extend_schema_field(serializers.DictField(child=TaskMetadataSerializer()))
    def get_tasks(self, job: Job) -> dict:
        # A pending task never tried has nothing to show.
        return {task.name: TaskMetadataSerializer(task).data for task in job.task_list
                if task.status != Task.Status.PENDING or task.tries}


class SpeakerStatsSerializer(serializers.Serializer):
    speaker = serializers.CharField(allow_null=True)
    turns = serializers.IntegerField()
    words = serializers.IntegerField()
    longest_turn_words = serializers.IntegerField()
    longest_turn = serializers.IntegerField(help_text="its turn number (line of the transcript)")
    talk_time_s = serializers.FloatField(allow_null=True, help_text="null when the transcript has no times")


class JobResultSerializer(serializers.Serializer):
    results = serializers.SerializerMethodField(help_text=(
        "name -> answer: a string, or the JSON value of a task with a schema (its citations checked: "
        "metadata.tasks[name].citations_checked / citations_rejected)"))
    errors = serializers.SerializerMethodField()
    metadata = JobMetadataSerializer(source="*")
    speakers = SpeakerStatsSerializer(many=True, help_text=(
        "computed from the transcript, no model call; in order of first appearance"))

    @extend_schema_field(serializers.DictField(child=serializers.JSONField()))
    def get_results(self, job: Job) -> dict:
        return {task.name: task.answer for task in job.task_list if task.status == Task.Status.SUCCEEDED}

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_errors(self, job: Job) -> dict:
        return {task.name: task.error for task in job.task_list if task.status == Task.Status.FAILED}


class JobBatchSerializer(serializers.Serializer):
    """A batch-mode job's provider batches and where its calls are (jobs/worker/provider_batch_poller.py: batch_summary)."""

    waiting = serializers.BooleanField(help_text="waiting for its provider batches, in no worker slot")
    waiting_since = serializers.DateTimeField(allow_null=True, help_text="BATCH_MAX_WAIT counts from here")
    batch_ids = serializers.ListField(child=serializers.CharField(), help_text="the provider batches")
    calls = serializers.DictField(child=serializers.IntegerField(), help_text=(
        "its calls by state: pending, submitted, succeeded, failed, expired, discarded"))


class JobSerializer(serializers.Serializer):
    job_id = serializers.UUIDField(source="id")
    status = serializers.ChoiceField(choices=Job.Status.values)
    queue = serializers.CharField()
    processing = serializers.ChoiceField(choices=PROCESSING_MODES)
    batch = JobBatchSerializer(source="batch_info", allow_null=True, help_text="null unless processing is batch")
    attempts = serializers.IntegerField(help_text="deliveries to a worker")
    progress = JobProgressSerializer(source="*")
    error = BlankAsNullCharField(help_text="why the job failed, or null")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    result = serializers.SerializerMethodField(help_text="null until a task has an outcome")

    @extend_schema_field(JobResultSerializer(allow_null=True))
    def get_result(self, job: Job) -> dict | None:
        return JobResultSerializer(job).data if job.tasks_done else None


# --- output: the job list ------------------------------------------------------------------------

class JobSummarySerializer(serializers.Serializer):
    """One item of the job list: what a client needs to pick a job, not its content."""

    job_id = serializers.UUIDField(source="id")
    status = serializers.ChoiceField(choices=Job.Status.values)
    queue = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    profile = BlankAsNullCharField(source="profile_name")
    progress = JobProgressSerializer(source="*")
    total_cost = MoneyField(source="cost", help_text="USD; while the job runs, the cost of its tasks so far")
    error = BlankAsNullCharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class JobListSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="the next (older) page, or null")
    previous = serializers.URLField(allow_null=True, help_text="the previous (newer) page, or null")
    results = JobSummarySerializer(many=True)


# --- output: the queues (staff) ------------------------------------------------------------------

QueueStatsSerializer = type("QueueStatsSerializer", (serializers.Serializer,), {  # jobs.monitoring.QueueStats
    "__module__": __name__,  # else DRF's metaclass names its own
    "name": serializers.CharField(),
    "queued": serializers.IntegerField(),
    **{registry: serializers.IntegerField() for registry in QUEUE_REGISTRIES},
    "oldest_queued_age_s": serializers.FloatField(allow_null=True,
                                                  help_text="seconds the head of the queue has waited")})


class WorkerRunningJobSerializer(serializers.Serializer):
    """A job a worker runs; null fields when its row is gone (or the id is not a job's)."""

    job_id = serializers.CharField()
    owner = serializers.CharField(source="job.owner.username", allow_null=True)
    provider = serializers.CharField(source="job.provider", allow_null=True)
    model = serializers.CharField(source="job.model", allow_null=True)
    status = serializers.CharField(source="job.status", allow_null=True)
    started_at = serializers.DateTimeField(source="job.started_at", allow_null=True)


class WorkerInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    hostname = serializers.CharField(allow_null=True)
    pid = serializers.IntegerField(allow_null=True)
    state = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    current_job_ids = serializers.ListField(child=serializers.CharField(), help_text="every job it runs now")
    slots = serializers.IntegerField(help_text="jobs the worker can hold at once (WORKER_CONCURRENCY)")
    slots_busy = serializers.IntegerField()
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    birth_date = serializers.DateTimeField(allow_null=True)
    successful_job_count = serializers.IntegerField()
    failed_job_count = serializers.IntegerField()
    alive = serializers.BooleanField(help_text="heartbeat within HEALTHZ_WORKER_MAX_AGE_SECONDS")
    current_jobs = WorkerRunningJobSerializer(many=True)
    current_job = WorkerRunningJobSerializer(allow_null=True, help_text=(
        "the first of current_jobs (kept for clients of one-job workers)"))


class QueuesSerializer(serializers.Serializer):
    queues = QueueStatsSerializer(many=True)
    workers = WorkerInfoSerializer(many=True)
    workers_alive = serializers.IntegerField()
