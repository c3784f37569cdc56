"""The job endpoints: one APIView per operation, thin (validate, call a service, render)."""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from redis.exceptions import RedisError
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.permissions import IsAdminUser
from rest_framework.views import APIView

from analysis.estimate import estimate_job
from analysis.planning import TaskSpec
from jobs.monitoring import queue_stats, redis_connection, workers_alive, workers_info
from jobs.selectors import job_document, job_for_user, job_summary, jobs_summaries, with_task_counts
from jobs.models import Job
from jobs.serializers import AnalyzeSerializer, BatchSerializer, JobListFilterSerializer
from jobs.services import JobRequest, job_cancel, job_delete, job_retry, job_submit
from scriptripper.errors import ServiceUnavailable, validation_error
# The one error shape lives in scriptripper.schema (accounts and analysis use it too); re-exported here.
from scriptripper.parsers import JSONParser  # DRF's, hardened against hostile JSON (depth, NUL, surrogates)
from scriptripper.schema import ERROR_SCHEMA, error_responses  # noqa: F401

JOB_ACCEPTED_SCHEMA = inline_serializer("JobAccepted", fields={
    "job_id": serializers.UUIDField(),
    "status": serializers.CharField(),
    "message": serializers.CharField(),
})

JOB_SCHEMA = inline_serializer("Job", fields={
    "job_id": serializers.UUIDField(),
    "status": serializers.ChoiceField(choices=["queued", "started", "finished", "failed", "canceled"]),
    "queue": serializers.CharField(),
    "processing": serializers.ChoiceField(choices=["standard", "flex", "batch"]),
    "batch": inline_serializer("JobBatch", allow_null=True, fields={
        "waiting": serializers.BooleanField(help_text="waiting for its provider batches, in no worker slot"),
        "waiting_since": serializers.DateTimeField(allow_null=True, help_text="BATCH_MAX_WAIT counts from here"),
        "batch_ids": serializers.ListField(child=serializers.CharField(), help_text="the provider batches"),
        "calls": serializers.DictField(child=serializers.IntegerField(), help_text=(
            "its calls by state: pending, submitted, succeeded, failed, expired, discarded")),
    }, help_text="null unless processing is batch"),
    "attempts": serializers.IntegerField(),
    "progress": inline_serializer("JobProgress", fields={
        "tasks_done": serializers.IntegerField(), "tasks_total": serializers.IntegerField()}),
    "error": serializers.CharField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
    "result": inline_serializer("JobResult", allow_null=True, fields={
        "results": serializers.DictField(child=serializers.JSONField(), help_text=(
            "name -> answer: a string, or the JSON value of a task with a schema (its citations checked: "
            "metadata.tasks[name].citations_checked / citations_rejected)")),
        "errors": serializers.DictField(child=serializers.CharField()),
        "metadata": serializers.DictField(),
        "speakers": inline_serializer("SpeakerStats", many=True, fields={
            "speaker": serializers.CharField(allow_null=True),
            "turns": serializers.IntegerField(),
            "words": serializers.IntegerField(),
            "longest_turn_words": serializers.IntegerField(),
            "longest_turn": serializers.IntegerField(help_text="its turn number (line of the transcript)"),
            "talk_time_s": serializers.FloatField(allow_null=True, help_text="null when the transcript has no times"),
        }, help_text="computed from the transcript, no model call; in order of first appearance"),
    }),
})


# Submissions take JSON, or a multipart form with the transcript as `file` (and JSON-valued fields such as
# `tasks` as JSON strings). Every other endpoint stays JSON only (415 otherwise).
SUBMISSION_PARSERS = [JSONParser, MultiPartParser, FormParser]

# Request examples (Swagger UI's "Try it out", and the fuzzer's first valid submissions).
_EXAMPLE_TRANSCRIPT = "Alice: We ship the beta on Friday.\nBob: Agreed; I will tell the customers."
ANALYZE_EXAMPLE = OpenApiExample("tasks", request_only=True, value={
    "transcript": _EXAMPLE_TRANSCRIPT, "provider": "openai", "model": "gpt-4o-mini",
    "tasks": {"summary": "Provide a brief summary", "key_points": "Extract key points"}})
STRUCTURED_EXAMPLE = OpenApiExample("structured", request_only=True, value={
    "transcript": _EXAMPLE_TRANSCRIPT, "provider": "openai", "model": "gpt-4o-mini", "language": "en",
    "tasks": {"summary": {"prompt": "Provide a brief summary", "cite": True},
              "action_items": {"prompt": "List the action items", "schema": {
                  "type": "object", "required": ["items"], "additionalProperties": False, "properties": {
                      "items": {"type": "array", "items": {
                          "type": "object", "required": ["task", "owner", "citations"], "additionalProperties": False,
                          "properties": {"task": {"type": "string"}, "owner": {"type": ["string", "null"]},
                                         "citations": {"type": "array", "items": {
                                             "type": "object", "required": ["turn", "quote"],
                                             "additionalProperties": False,
                                             "properties": {"turn": {"type": "integer"},
                                                            "quote": {"type": "string"}}}}}}}}}}}})
BATCH_EXAMPLE = OpenApiExample("tasks", request_only=True, value={
    "transcript": _EXAMPLE_TRANSCRIPT, "provider": "openai", "model": "gpt-4o-mini",
    "tasks": [{"task_name": "summary", "prompt": "Provide a brief summary"}]})


def job_request(data: dict, *, kind: str = Job.Kind.ANALYZE) -> JobRequest:
    """The JobRequest of validated analyze/batch input."""
    return JobRequest(
        provider=data["provider"],
        model=data["model"],
        transcript=data["transcript"],
        transcript_format=data.get("transcript_format", "text"),
        system_prompt=data.get("system_prompt", ""),
        tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in data["tasks"]],
        kind=kind,
        profile_name=data.get("profile_name", ""),
        params={k: data[k] for k in ("max_output_tokens", "temperature") if data.get(k) is not None},
        max_cost=data.get("max_cost"),
        reuse_results=data.get("reuse", True),
        callback_url=data.get("callback_url", ""),
        language=data.get("language", ""),
        processing=data.get("processing"),
        fallback=data.get("fallback") or "standard",
    )


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Any string up to 200 characters, unique per request you mean. The same key with the same body "
                "within 24 h answers 200 with the first job instead of creating another; with another body, 409.")


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 200:
        raise validation_error("Idempotency-Key", "The Idempotency-Key header must be at most 200 characters.")
    if key and not key.isprintable():
        raise validation_error("Idempotency-Key", "The Idempotency-Key header must be printable text.")
    return key


def accepted(job) -> Response:
    return Response({"job_id": str(job.id), "status": job.status, "message": "Job queued for processing"},
                    status=status.HTTP_202_ACCEPTED)


class JobAnalyzeApi(APIView):
    parser_classes = SUBMISSION_PARSERS
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request={"application/json": AnalyzeSerializer, "multipart/form-data": AnalyzeSerializer},
                   parameters=[IDEMPOTENCY_KEY], examples=[ANALYZE_EXAMPLE, STRUCTURED_EXAMPLE],
                   responses={202: JOB_ACCEPTED_SCHEMA,
                              200: OpenApiResponse(JOB_SCHEMA, description="Idempotency-Key seen before with the "
                                                   "same body: that job, as GET /api/v1/jobs/{id} shows it"),
                              **error_responses(400, 401, 402, 409, 413, 415, 429)},
                   summary="Submit a transcript and named tasks (or a profile) for analysis")
    def post(self, request: Request) -> Response:
        key = idempotency_key(request)
        serializer = AnalyzeSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        job, created = job_submit(owner=request.user, request=job_request(serializer.validated_data),
                                  idempotency_key=key)
        return accepted(job) if created else Response(job_document(job))



class JobBatchApi(APIView):
    parser_classes = SUBMISSION_PARSERS
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request={"application/json": BatchSerializer, "multipart/form-data": BatchSerializer},
                   examples=[BATCH_EXAMPLE],
                   responses={202: JOB_ACCEPTED_SCHEMA, **error_responses(400, 401, 402, 413, 415, 429)},
                   summary='Submit a batch analysis: tasks as [{"task_name", "prompt"}], run on the low queue')
    def post(self, request: Request) -> Response:
        serializer = BatchSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        # Job.Kind.BATCH routes to the `low` queue (jobs.services.route_queue).
        job, _ = job_submit(owner=request.user, request=job_request(serializer.validated_data, kind=Job.Kind.BATCH))
        return accepted(job)


def owned_job(request: Request, job_id: str) -> Job:
    # Someone else's job is "not found", never "forbidden".
    job = job_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise NotFound("No such job.")
    return job


class JobDetailApi(APIView):
    @extend_schema(responses={200: JOB_SCHEMA, **error_responses(401, 404)}, summary="A job's status and result")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_document(owned_job(request, job_id)))

    @extend_schema(responses={204: None, **error_responses(401, 404)},
                   summary="Delete a job with its transcript and results (stopping it first if it runs)")
    def delete(self, request: Request, job_id: str) -> Response:
        job_delete(job=owned_job(request, job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobCancelApi(APIView):
    @extend_schema(request=None, responses={200: JOB_SCHEMA, **error_responses(401, 404, 409)},
                   summary="Cancel a job: a queued one leaves the queue, a running one is stopped "
                           "(finished tasks keep their results); 409 if it already ended")
    def post(self, request: Request, job_id: str) -> Response:
        return Response(job_document(job_cancel(job=owned_job(request, job_id))))


class JobRetryApi(APIView):
    @extend_schema(request=None, responses={200: JOB_SCHEMA, **error_responses(401, 404, 409)},
                   summary="Run a failed or canceled job again, or a finished one with failed tasks: only the "
                           "tasks without a result run; 409 otherwise")
    def post(self, request: Request, job_id: str) -> Response:
        return Response(job_document(job_retry(job=owned_job(request, job_id))))


ESTIMATE_TASK_SCHEMA = inline_serializer("TaskEstimate", fields={
    "calls": serializers.IntegerField(),
    "chunks": serializers.IntegerField(),
    "input_tokens": serializers.IntegerField(),
    "cost_low": serializers.FloatField(),
    "cost_high": serializers.FloatField(),
    "error": serializers.CharField(required=False),
})

ESTIMATE_SCHEMA = inline_serializer("JobEstimate", fields={
    "provider": serializers.CharField(),
    "model": serializers.CharField(),
    "token_count": serializers.ChoiceField(choices=["exact", "approximate"]),
    "context_tokens": serializers.IntegerField(),
    "transcript_tokens": serializers.IntegerField(),
    "calls": serializers.IntegerField(),
    "input_tokens": serializers.IntegerField(),
    "max_output_tokens": serializers.IntegerField(),
    "max_output_tokens_total": serializers.IntegerField(),
    "cost_low": serializers.FloatField(help_text="USD: every input cached where the provider can, 1 output token a call"),
    "cost_high": serializers.FloatField(help_text="USD: nothing cached, every call using its whole output limit"),
    "currency": serializers.CharField(),
    "processing": serializers.ChoiceField(choices=["standard", "flex", "batch"],
                                          help_text="the mode cost_low and cost_high are priced in"),
    "by_processing": serializers.DictField(
        child=inline_serializer("JobEstimateModeCost", fields={"cost_low": serializers.FloatField(),
                                                               "cost_high": serializers.FloatField()}),
        help_text="the same calls priced in every processing mode the model offers (standard, flex, batch)"),
    "tasks": serializers.DictField(child=ESTIMATE_TASK_SCHEMA),
    "price_unknown": serializers.BooleanField(required=False),
    "note": serializers.CharField(required=False),
})


class JobEstimateApi(APIView):
    parser_classes = SUBMISSION_PARSERS

    @extend_schema(request={"application/json": AnalyzeSerializer, "multipart/form-data": AnalyzeSerializer}, responses={200: ESTIMATE_SCHEMA, **error_responses(400, 401, 413, 415)},
                   examples=[ANALYZE_EXAMPLE],
                   summary="Token counts and the cost range of an analyze request, before anything runs")
    def post(self, request: Request) -> Response:
        # The same body and validation as analyze, so an estimate answers for exactly what analyze would run
        # (the request in the context: a `profile` is looked up among the caller's own).
        serializer = AnalyzeSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        estimate = estimate_job(
            transcript=data["transcript"],
            provider=data["provider"],
            model=data["model_info"],
            system_prompt=data.get("system_prompt", ""),
            tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in data["tasks"]],
            max_output_tokens=data.get("max_output_tokens"),
            processing=data.get("processing") or "standard",
        )
        return Response(estimate.as_dict())


# --- Listing jobs, and the queues for operators ---------------------------------------------------

JOB_SUMMARY_SCHEMA = inline_serializer("JobSummary", fields={
    "job_id": serializers.UUIDField(),
    "status": serializers.ChoiceField(choices=["queued", "started", "finished", "failed", "canceled"]),
    "queue": serializers.CharField(),
    "provider": serializers.CharField(),
    "model": serializers.CharField(),
    "profile": serializers.CharField(allow_null=True),
    "progress": inline_serializer("JobSummaryProgress", fields={
        "tasks_done": serializers.IntegerField(), "tasks_total": serializers.IntegerField()}),
    "total_cost": serializers.FloatField(help_text="USD; while the job runs, the cost of its tasks so far"),
    "error": serializers.CharField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
})

JOB_LIST_SCHEMA = inline_serializer("JobList", fields={
    "next": serializers.URLField(allow_null=True, help_text="the next (older) page, or null"),
    "previous": serializers.URLField(allow_null=True, help_text="the previous (newer) page, or null"),
    "results": JOB_SUMMARY_SCHEMA.__class__(many=True),
})


class JobCursorPagination(CursorPagination):
    """Newest first; a cursor stays valid while new jobs arrive (no page drift, no OFFSET scans)."""

    ordering = ("-created_at", "-id")
    page_size_query_param = "limit"

    def get_page_size(self, request):
        # Read at request time (not class definition) so the settings apply as configured.
        self.page_size = settings.JOBS_PAGE_SIZE
        self.max_page_size = settings.JOBS_MAX_PAGE_SIZE
        return super().get_page_size(request)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            # DRF answers a bad cursor with 404; it is a malformed parameter, not a missing job.
            raise validation_error("cursor", "Invalid cursor: pass back the `next` or `previous` link as given.") from None


class JobListApi(APIView):
    @extend_schema(
        parameters=[
            JobListFilterSerializer,
            OpenApiParameter("cursor", str, description="from the `next` / `previous` links"),
            OpenApiParameter("limit", int, description="jobs per page (default JOBS_PAGE_SIZE, at most JOBS_MAX_PAGE_SIZE)"),
        ],
        responses={200: JOB_LIST_SCHEMA, **error_responses(400, 401)},
        summary="Your jobs, newest first (cursor-paginated, without transcripts or results)",
        operation_id="v1_jobs_list",
    )
    def get(self, request: Request) -> Response:
        filters = JobListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = JobCursorPagination()
        page = paginator.paginate_queryset(jobs_summaries(user=request.user, filters=filters.validated_data),
                                           request, view=self)
        return paginator.get_paginated_response([job_summary(job) for job in with_task_counts(list(page))])


QUEUE_SCHEMA = inline_serializer("QueueStats", fields={
    "name": serializers.CharField(),
    "queued": serializers.IntegerField(),
    "started": serializers.IntegerField(),
    "failed": serializers.IntegerField(),
    "scheduled": serializers.IntegerField(),
    "deferred": serializers.IntegerField(),
    "oldest_queued_age_s": serializers.FloatField(allow_null=True, help_text="seconds the head of the queue has waited"),
})

CURRENT_JOB_FIELDS = {
    "job_id": serializers.CharField(),
    "owner": serializers.CharField(allow_null=True),
    "provider": serializers.CharField(allow_null=True),
    "model": serializers.CharField(allow_null=True),
    "status": serializers.CharField(allow_null=True),
    "started_at": serializers.DateTimeField(allow_null=True),
}
CURRENT_JOB_SCHEMA = inline_serializer("WorkerRunningJob", fields=CURRENT_JOB_FIELDS)

WORKER_SCHEMA = inline_serializer("WorkerInfo", fields={
    "name": serializers.CharField(),
    "hostname": serializers.CharField(allow_null=True),
    "pid": serializers.IntegerField(allow_null=True),
    "state": serializers.CharField(),
    "alive": serializers.BooleanField(help_text="heartbeat within HEALTHZ_WORKER_MAX_AGE_SECONDS"),
    "queues": serializers.ListField(child=serializers.CharField()),
    "last_heartbeat": serializers.DateTimeField(allow_null=True),
    "birth_date": serializers.DateTimeField(allow_null=True),
    "successful_job_count": serializers.IntegerField(),
    "failed_job_count": serializers.IntegerField(),
    "slots": serializers.IntegerField(help_text="jobs the worker can hold at once (WORKER_CONCURRENCY)"),
    "slots_busy": serializers.IntegerField(),
    "current_job_ids": serializers.ListField(child=serializers.CharField(), help_text="every job it runs now"),
    "current_jobs": CURRENT_JOB_SCHEMA.__class__(many=True),
    "current_job": inline_serializer("WorkerCurrentJob", allow_null=True, fields={
        **CURRENT_JOB_FIELDS}, help_text="the first of current_jobs (kept for clients of one-job workers)"),
})

QUEUES_SCHEMA = inline_serializer("Queues", fields={
    "queues": QUEUE_SCHEMA.__class__(many=True),
    "workers": WORKER_SCHEMA.__class__(many=True),
    "workers_alive": serializers.IntegerField(),
})


class QueueListApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: QUEUES_SCHEMA, **error_responses(401, 403, 503)},
                   summary="Queue depths and the workers alive, with what each one runs (staff only)")
    def get(self, request: Request) -> Response:
        connection = redis_connection()
        try:
            queues = queue_stats(connection)
            workers = workers_info(connection)
        except RedisError as exc:
            raise ServiceUnavailable(f"Redis is unreachable ({type(exc).__name__}).") from None
        finally:
            connection.close()
        alive = {w["name"] for w in workers_alive(workers)}
        running = {job_id for w in workers for job_id in w["current_job_ids"]}
        jobs = {str(job.id): job for job in
                Job.objects.filter(id__in=[job_id for job_id in running if is_uuid(job_id)])
                .select_related("owner").only("id", "status", "provider", "model", "started_at", "owner__username")}

        def describe(job_id: str) -> dict:
            job = jobs.get(job_id)
            return {
                "job_id": job_id,
                "owner": job.owner.username if job else None,
                "provider": job.provider if job else None,
                "model": job.model if job else None,
                "status": job.status if job else None,
                "started_at": job.started_at if job else None,
            }

        items = []
        for worker in workers:
            current = [describe(job_id) for job_id in worker["current_job_ids"]]
            items.append({**worker, "alive": worker["name"] in alive, "current_jobs": current,
                          "current_job": current[0] if current else None})
        return Response({"queues": queues, "workers": items, "workers_alive": len(alive)})


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
