"""The job endpoints: one APIView per operation, thin (validate, call a service, render)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.serializers import JobEstimateSerializer
from jobs.documents import job_document
from jobs.models import Job
from jobs.selectors import job_for_user, jobs_summaries, queues_overview, with_task_counts
from jobs.serializers import (
    AnalyzeSerializer,
    BatchSerializer,
    JobAcceptedSerializer,
    JobListFilterSerializer,
    JobListSerializer,
    JobSerializer,
    QueuesSerializer,
)
from jobs.services import job_cancel, job_delete, job_retry
from jobs.submission import job_analyze, job_batch, job_estimate
from scriptripper.errors import validation_error
from scriptripper.parsers import JSONParser  # DRF's, hardened against hostile JSON (depth, NUL, surrogates)
from scriptripper.schema import error_responses

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


def accepted(job: Job) -> Response:
    return Response(JobAcceptedSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobAnalyzeApi(APIView):
    parser_classes = SUBMISSION_PARSERS
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request={"application/json": AnalyzeSerializer, "multipart/form-data": AnalyzeSerializer},
                   parameters=[IDEMPOTENCY_KEY], examples=[ANALYZE_EXAMPLE, STRUCTURED_EXAMPLE],
                   responses={202: JobAcceptedSerializer,
                              200: OpenApiResponse(JobSerializer, description="Idempotency-Key seen before with the "
                                                   "same body: that job, as GET /api/v1/jobs/{id} shows it"),
                              **error_responses(400, 401, 402, 409, 413, 415, 429)},
                   summary="Submit a transcript and named tasks (or a profile) for analysis")
    def post(self, request: Request) -> Response:
        key = idempotency_key(request)
        serializer = AnalyzeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job, created = job_analyze(owner=request.user, idempotency_key=key, **serializer.validated_data)
        return accepted(job) if created else Response(job_document(job))


class JobBatchApi(APIView):
    parser_classes = SUBMISSION_PARSERS
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request={"application/json": BatchSerializer, "multipart/form-data": BatchSerializer},
                   examples=[BATCH_EXAMPLE],
                   responses={202: JobAcceptedSerializer, **error_responses(400, 401, 402, 413, 415, 429)},
                   summary='Submit a batch analysis: tasks as [{"task_name", "prompt"}], run on the low queue')
    def post(self, request: Request) -> Response:
        serializer = BatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return accepted(job_batch(owner=request.user, **serializer.validated_data))


def owned_job(request: Request, job_id: str) -> Job:
    # Someone else's job is "not found", never "forbidden".
    job = job_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise NotFound("No such job.")
    return job


class JobDetailApi(APIView):
    @extend_schema(responses={200: JobSerializer, **error_responses(401, 404)}, summary="A job's status and result")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_document(owned_job(request, job_id)))

    @extend_schema(responses={204: None, **error_responses(401, 404)},
                   summary="Delete a job with its transcript and results (stopping it first if it runs)")
    def delete(self, request: Request, job_id: str) -> Response:
        job_delete(job=owned_job(request, job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobChangeApi(APIView):
    # POST on one of your jobs: `change` (a service) acts on it; the answer is the job document.
    change: Callable[..., Job]

    def post(self, request: Request, job_id: str) -> Response:
        return Response(job_document(self.change(job=owned_job(request, job_id))))


JOB_CHANGED = {200: JobSerializer, **error_responses(401, 404, 409)}


@extend_schema_view(post=extend_schema(
    request=None, responses=JOB_CHANGED, summary="Cancel a job: a queued one leaves the queue, a running one is "
                                                 "stopped (finished tasks keep their results); 409 if it already ended"))
class JobCancelApi(JobChangeApi):
    change = staticmethod(job_cancel)


@extend_schema_view(post=extend_schema(
    request=None, responses=JOB_CHANGED, summary="Run a failed or canceled job again, or a finished one with failed "
                                                 "tasks: only the tasks without a result run; 409 otherwise"))
class JobRetryApi(JobChangeApi):
    change = staticmethod(job_retry)


class JobEstimateApi(APIView):
    parser_classes = SUBMISSION_PARSERS

    @extend_schema(request={"application/json": AnalyzeSerializer, "multipart/form-data": AnalyzeSerializer},
                   responses={200: JobEstimateSerializer, **error_responses(400, 401, 413, 415)},
                   examples=[ANALYZE_EXAMPLE],
                   summary="Token counts and the cost range of an analyze request, before anything runs")
    def post(self, request: Request) -> Response:
        serializer = AnalyzeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(JobEstimateSerializer(job_estimate(owner=request.user, **serializer.validated_data)).data)


# --- Listing jobs, and the queues for operators ---------------------------------------------------

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
        responses={200: JobListSerializer, **error_responses(400, 401)},
        summary="Your jobs, newest first (cursor-paginated, without transcripts or results)",
        operation_id="v1_jobs_list",
    )
    def get(self, request: Request) -> Response:
        filters = JobListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = JobCursorPagination()
        page = paginator.paginate_queryset(jobs_summaries(user=request.user, filters=filters.validated_data),
                                           request, view=self)
        return Response(JobListSerializer({"next": paginator.get_next_link(), "previous": paginator.get_previous_link(),
                                           "results": with_task_counts(list(page))}).data)


class QueueListApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: QueuesSerializer, **error_responses(401, 403, 503)},
                   summary="Queue depths and the workers alive, with what each one runs (staff only)")
    def get(self, request: Request) -> Response:
        return Response(QueuesSerializer(queues_overview()).data)
