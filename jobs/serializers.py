"""The job endpoints' shapes: input serializers (each field on its own; jobs/submission.py does the rest) and
output serializers, the one source of every job response, of the webhook body and of the OpenAPI schema.

Unknown input fields are ignored (documented in README). The transcript may arrive as text (plain, SRT or
WebVTT), as a list of segments, or as an uploaded file (multipart).
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.clients import provider_error
from analysis.engine.processing import FALLBACKS, PROCESSING_MODES
from analysis.engine.providers.usage import USAGE_KEYS
from analysis.serializers import FallbackModelsField, PriceNoteField, validate_language_tag, validate_provider_name
from jobs.input_fields import BatchTasksField, TasksField
from jobs.models import Job, Task
from jobs.monitoring import QUEUE_REGISTRIES
from scriptripper.input_fields import StrictCharField, check_range, no_nul
from jobs.sharing import absolute_url, share_path
from scriptripper.output_fields import BlankAsNullCharField, MoneyField, OptionalBooleanField, RoundedFloatField
from transcripts.serializers import TranscriptListFilterSerializer, TranscriptSourceSerializer

QUEUED_MESSAGE = "Job queued for processing"


# --- input -----------------------------------------------------------------------------------------

class JobModelOptionsSerializer(serializers.Serializer):
    """Fields of every submission (analyze, batch, estimate, ask): provider, model and the job's options."""

    provider = StrictCharField(required=False)
    model = StrictCharField(required=False, max_length=100)
    system_prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    max_output_tokens = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000, allow_null=True)
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0, allow_null=True)
    max_cost = serializers.DecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=6, min_value=0, coerce_to_string=False,
        help_text="USD. Refused at submit (400) if the job's lowest estimated cost is above it; "
                  "while running, no further task is started once the job's real cost reaches it.")
    language = StrictCharField(
        required=False, allow_blank=True, max_length=35,
        help_text="BCP 47 tag (en, pt-BR) of the language every answer is written in; absent: the transcript's")
    callback_url = StrictCharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="http(s) URL called with the job document (Standard Webhooks signature) when the job ends")

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


class JobOptionsSerializer(TranscriptSourceSerializer, JobModelOptionsSerializer):
    """Fields shared by analyze, batch and estimate: the transcript in any shape (TranscriptSourceSerializer)
    or a stored one's `transcript_id`, provider, model, options."""

    transcript_id = serializers.UUIDField(required=False, help_text=(
        "a stored transcript of yours (POST /api/v1/transcripts), instead of `transcript`, `segments` or `file`"))
    reuse = serializers.BooleanField(
        required=False, default=True,
        help_text="reuse the output of an identical task of yours (same transcript, provider, model, system prompt, "
                  "prompt and parameters) finished within RESULT_REUSE_TTL_SECONDS, at no cost; false: always call")
    processing = serializers.ChoiceField(
        choices=PROCESSING_MODES, required=False,
        help_text="standard (default; `low` jobs: LOW_QUEUE_PROCESSING), flex (OpenAI and Gemini's best-effort tier, "
                  "synchronous, at the flex price) or batch (the provider's batch API: results within hours at the "
                  "batch price); a mode the provider or model does not offer is a 400")
    fallback = serializers.ChoiceField(
        choices=FALLBACKS, required=False,
        help_text="what a call its processing mode cannot finish does (flex refused, batch expired or failed, "
                  "BATCH_MAX_WAIT passed): standard (sent again at the standard price; the default) or fail")
    fallback_models = FallbackModelsField(
        required=False, help_text=(
            "the models a task moves on to, in order, when its own cannot answer (5xx, 429, timeouts, its circuit "
            "open, no quota, a refused key, the model gone, a blocked answer; a context overflow only to a larger "
            "window; never a bad request): at most 3, each a provider or endpoint with one of its models, checked "
            "like `model`. Absent: the profile's, else the server's MODEL_FALLBACKS for the model; [] for none"))


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


# The most transcripts a scope may name (a larger set is better selected by its filters).
MAX_SCOPE_TRANSCRIPTS = 10_000


class AskScopeSerializer(TranscriptListFilterSerializer):
    """The meetings a question is asked over: `transcripts` named by id, or every transcript the filters select
    (as GET /api/v1/transcripts filters them)."""

    q = None  # the list's full-text filter is not a scope: the ask searches its scope itself
    transcripts = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=MAX_SCOPE_TRANSCRIPTS,
        help_text="ids of transcripts of yours (instead of the filters)")


class AskSerializer(JobModelOptionsSerializer):
    """POST /api/v1/ask: a question across meetings, answered with citations {transcript, turn, quote}."""

    question = StrictCharField(help_text="what to ask of the meetings")
    scope = AskScopeSerializer(required=False, allow_null=True, help_text=(
        '{"transcripts": [ids]} or {"tag", "occurred_after", "occurred_before", "speaker"} (the meetings they '
        "select); absent: all your transcripts"))

    def validate_question(self, value: str) -> str:
        if len(value) > settings.MAX_PROMPT_CHARS:
            raise serializers.ValidationError(f"is {len(value)} characters long; the limit is "
                                              f"{settings.MAX_PROMPT_CHARS} (MAX_PROMPT_CHARS)")
        return no_nul(value)

    def validate_scope(self, value: dict | None) -> dict | None:
        if value is None:
            return None
        if "transcripts" in value and len(value) > 1:
            raise serializers.ValidationError("Name `transcripts` or give filters (tag, speaker, occurred_after, "
                                              "occurred_before), not both.")
        if not value or value.get("transcripts") == []:
            raise serializers.ValidationError("The scope is empty: name `transcripts` or give a filter (tag, speaker, "
                                              "occurred_after, occurred_before); leave `scope` out to ask over all "
                                              "your transcripts.")
        return value


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
        return check_range(attrs, "created_after", "created_before")


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


class FallbackFromSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    reason = serializers.CharField(help_text="the error kind that moved the task on (rate_limit, server_error, "
                                             "timeout, circuit_open, context_length, blocked, ...)")
    message = serializers.CharField()


class TaskMetadataSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="who answered: the job's provider, or one of its fallback chain "
                                               "(a failed task: the last one tried)")
    model = serializers.CharField()
    fallback_from = FallbackFromSerializer(many=True, help_text="the models the task moved away from, in order")
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


class ConsultedMeetingSerializer(serializers.Serializer):
    """A meeting an ask read (analysis/engine/ask.py: Consulted)."""

    transcript = serializers.UUIDField(help_text="the transcript's id, as the answer's citations name it")
    title = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    turns_read = serializers.IntegerField()
    turn_ranges = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()), help_text=(
        "[first, last] turn numbers of each run of consecutive turns read"))


class JobMetadataSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="the job's request (each task says who answered it)")
    model = serializers.CharField()
    fallback_models = serializers.ListField(child=serializers.DictField(child=serializers.CharField()),
                                            help_text='the job\'s fallback chain: [{"provider", "model"}]')
    total_cost = MoneyField(source="tasks_cost", help_text="USD")
    usage = serializers.SerializerMethodField()
    tasks = serializers.SerializerMethodField()
    lost_calls = serializers.IntegerField(help_text="calls in flight when a worker died: paid, answer lost")
    price_unknown = OptionalBooleanField()
    note = PriceNoteField()
    # Ask jobs with an answer only (jobs.documents.job_with_tasks: `consulted`): what the question read.
    read = serializers.ChoiceField(choices=["whole", "search"], source="consulted.read", required=False, help_text=(
        "ask jobs: whole (the meetings in scope fit one request) or search (the turns a full-text search found, "
        "with their neighbours)"))
    search_terms = serializers.ListField(child=serializers.CharField(), source="consulted.search_terms",
                                         required=False, help_text="ask jobs that searched: the model's search terms")
    meetings = ConsultedMeetingSerializer(many=True, source="consulted.meetings", required=False, help_text=(
        "ask jobs: the meetings consulted, by date"))
    turns_read = serializers.IntegerField(source="consulted.turns_read", required=False, help_text=(
        "ask jobs: the turns read, over every meeting"))

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
    error = BlankAsNullCharField(help_text=(
        "why the job failed, or null; a finished job whose tasks did not all answer says how many failed"))
    partial = serializers.SerializerMethodField(help_text=(
        "true when the job finished with some tasks answered and others failed (or not run): `errors` says which"))
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    result = serializers.SerializerMethodField(help_text="null until a task has an outcome")
    transcript_id = serializers.UUIDField(source="transcript_ref_id", allow_null=True, help_text=(
        "the stored transcript it analyzes (GET /api/v1/transcripts/{id}); null once that was deleted"))
    transcript_deleted = serializers.BooleanField(help_text=(
        "its transcript was deleted: the results stay, the text is gone, and the job cannot be retried"))

    report_url = serializers.SerializerMethodField(help_text=(
        "the job's report page for people (POST /api/v1/jobs/{id}/share makes the link), or null without a "
        "link in force"))

    def get_partial(self, job: Job) -> bool:
        return job.status == Job.Status.FINISHED and any(task.status != Task.Status.SUCCEEDED
                                                         for task in job.task_list)

    @extend_schema_field(JobResultSerializer(allow_null=True))
    def get_result(self, job: Job) -> dict | None:
        return JobResultSerializer(job).data if job.tasks_done else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_report_url(self, job: Job) -> str | None:
        if job.share_expires_at is None or job.share_expires_at <= timezone.now() or not job.share_nonce:
            return None
        path = share_path(job_id=job.id, nonce=job.share_nonce, expires_at=job.share_expires_at)
        return absolute_url(path, self.context.get("request"))


class JobShareSerializer(serializers.Serializer):
    """A share link of the job's report page (POST /api/v1/jobs/{id}/share)."""

    url = serializers.SerializerMethodField(help_text=(
        "the report page: read-only, opened without a token by anyone who has the link"))
    expires_at = serializers.DateTimeField(source="share_expires_at", help_text=(
        "when this link stops working (SHARE_LINK_DAYS after it was made; DELETE on the same path ends every link "
        "of the job at once)"))

    @extend_schema_field(serializers.URLField())
    def get_url(self, job: Job) -> str:
        path = share_path(job_id=job.id, nonce=job.share_nonce, expires_at=job.share_expires_at)
        return absolute_url(path, self.context.get("request"))


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
