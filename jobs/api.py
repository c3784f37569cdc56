"""The job endpoints: one APIView per operation, thin (validate, call a service, render)."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import renderers, status
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from analysis.serializers import JobEstimateSerializer
from jobs.documents import job_document
from jobs.models import Job
from jobs.report import meeting_title_and_date, report_markdown
from jobs.selectors import job_for_user, jobs_summaries, queues_overview, reuse_sources, with_task_counts
from jobs.serializers import (
    AnalyzeSerializer, AskSerializer, BatchSerializer, JobAcceptedSerializer, JobListFilterSerializer,
    JobListSerializer, JobSerializer, JobShareSerializer, QueuesSerializer,
)
from jobs.services import job_cancel, job_delete, job_retry, job_share_create, job_share_revoke
from jobs.submission import job_analyze, job_ask, job_batch, job_estimate
from scriptripper.errors import validation_error
from scriptripper.pagination import ApiCursorPagination
from scriptripper.parsers import SUBMISSION_PARSERS
from scriptripper.renderers import JSONRenderer
from scriptripper.schema import error_responses

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


IDEMPOTENT_REPLAY = OpenApiResponse(JobSerializer, description="Idempotency-Key seen before with the same body: "
                                                               "that job, as GET /api/v1/jobs/{id} shows it")


def idempotent_submission(request: Request, serializer_class: type[Serializer],
                          service: Callable[..., tuple[Job, bool]]) -> Response:
    """A submission under its Idempotency-Key: 202 with the new job, or 200 with the job of an earlier request
    with the same key and body."""
    key = idempotency_key(request)
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    job, created = service(owner=request.user, idempotency_key=key, **serializer.validated_data)
    return accepted(job) if created else Response(job_document(job, request))


class JobAnalyzeApi(APIView):
    parser_classes = SUBMISSION_PARSERS
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request={"application/json": AnalyzeSerializer, "multipart/form-data": AnalyzeSerializer},
                   parameters=[IDEMPOTENCY_KEY], examples=[ANALYZE_EXAMPLE, STRUCTURED_EXAMPLE],
                   responses={202: JobAcceptedSerializer,
                              200: IDEMPOTENT_REPLAY,
                              **error_responses(400, 401, 402, 409, 413, 415, 429)},
                   summary="Submit a transcript and named tasks (or a profile) for analysis")
    def post(self, request: Request) -> Response:
        return idempotent_submission(request, AnalyzeSerializer, job_analyze)


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


ASK_EXAMPLE = OpenApiExample("scope", request_only=True, value={
    "question": "What did we decide about the launch date, and when?", "provider": "openai", "model": "gpt-4o-mini",
    "scope": {"tag": "launch", "occurred_after": "2026-11-01T00:00:00Z"}})


class AskApi(APIView):
    throttle_scope = "submit"  # counted against the plan's submission rate too (accounts.throttling)

    @extend_schema(request=AskSerializer, parameters=[IDEMPOTENCY_KEY], examples=[ASK_EXAMPLE],
                   responses={202: JobAcceptedSerializer,
                              200: IDEMPOTENT_REPLAY,
                              **error_responses(400, 401, 402, 409, 415, 429)},
                   summary="Ask a question across meetings: a job whose result.results.answer cites "
                           "{transcript, turn, quote}, each checked")
    def post(self, request: Request) -> Response:
        return idempotent_submission(request, AskSerializer, job_ask)


def owned_job(request: Request, job_id: str) -> Job:
    # Someone else's job is "not found", never "forbidden".
    job = job_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise NotFound("No such job.")
    return job


class JobDetailApi(APIView):
    @extend_schema(responses={200: JobSerializer, **error_responses(401, 404)}, summary="A job's status and result")
    def get(self, request: Request, job_id: str) -> Response:
        return Response(job_document(owned_job(request, job_id), request))

    @extend_schema(responses={204: None, **error_responses(401, 404)},
                   summary="Delete a job with its transcript and results (stopping it first if it runs)")
    def delete(self, request: Request, job_id: str) -> Response:
        job_delete(job=owned_job(request, job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobChangeApi(APIView):
    # POST on one of your jobs: `change` (a service) acts on it; the answer is the job document.
    change: Callable[..., Job]

    def post(self, request: Request, job_id: str) -> Response:
        return Response(job_document(self.change(job=owned_job(request, job_id)), request))


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


class JobShareApi(APIView):
    @extend_schema(request=None, responses={201: JobShareSerializer, **error_responses(401, 404)},
                   summary="A share link of the job's report page: read-only, no token needed, for SHARE_LINK_DAYS")
    def post(self, request: Request, job_id: str) -> Response:
        job = job_share_create(job=owned_job(request, job_id))
        return Response(JobShareSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **error_responses(401, 404)},
                   summary="Revoke every share link of the job at once")
    def delete(self, request: Request, job_id: str) -> Response:
        job_share_revoke(job=owned_job(request, job_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MarkdownRenderer(renderers.BaseRenderer):
    media_type = "text/markdown"
    format = "md"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode(self.charset)


class MarkdownOnly(BaseContentNegotiation):
    """The report is Markdown whatever the client's Accept says (its errors are JSON: JobReportMarkdownApi)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return MarkdownRenderer(), MarkdownRenderer.media_type


class JobReportMarkdownApi(APIView):
    renderer_classes = [MarkdownRenderer]
    content_negotiation_class = MarkdownOnly

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR,
                              # Its errors are JSON (the view's one renderer is Markdown's).
                              **{(code, JSONRenderer.media_type): response
                                 for code, response in error_responses(401, 404).items()}},
                   summary="The job's report as Markdown (what `manage.py analyze --wait` prints)")
    def get(self, request: Request, job_id: str) -> Response:
        job = owned_job(request, job_id)
        title, date = meeting_title_and_date(job)
        reused_from = {name: str(source.id) for name, source in reuse_sources(job).items()}
        return Response(report_markdown(job_document(job, request), title=title, date=date, reused_from=reused_from))

    def finalize_response(self, request: Request, response, *args, **kwargs):
        # Only the report is Markdown: its errors (the one JSON shape of the API) and OPTIONS are JSON.
        if isinstance(response, Response) and not isinstance(response.data, str):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


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

class JobCursorPagination(ApiCursorPagination):
    ordering = ("-created_at", "-id")
    page_size_setting, max_page_size_setting = "JOBS_PAGE_SIZE", "JOBS_MAX_PAGE_SIZE"


class JobListApi(APIView):
    @extend_schema(
        parameters=[JobListFilterSerializer, *JobCursorPagination.parameters("jobs")],
        responses={200: JobListSerializer, **error_responses(400, 401)},
        summary="Your jobs, newest first (cursor-paginated, without transcripts or results)",
        operation_id="v1_jobs_list",
    )
    def get(self, request: Request) -> Response:
        filters = JobListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return JobCursorPagination().page_response(jobs_summaries(user=request.user, filters=filters.validated_data),
                                                   request, self, JobListSerializer, prepare=with_task_counts)


class QueueListApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: QueuesSerializer, **error_responses(401, 403, 503)},
                   summary="Queue depths and the workers alive, with what each one runs (staff only)")
    def get(self, request: Request) -> Response:
        return Response(QueuesSerializer(queues_overview()).data)
