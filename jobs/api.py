"""The job endpoints: one APIView per operation, thin (validate, call a service, render)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.estimate import estimate_job
from analysis.runner import TaskSpec
from jobs.selectors import job_document, job_for_user
from jobs.serializers import AnalyzeSerializer
from jobs.services import JobRequest, job_create

ERROR_SCHEMA = inline_serializer("Error", fields={
    "error": inline_serializer("ErrorBody", fields={
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
    }),
})

JOB_ACCEPTED_SCHEMA = inline_serializer("JobAccepted", fields={
    "job_id": serializers.UUIDField(),
    "status": serializers.CharField(),
    "message": serializers.CharField(),
})

JOB_SCHEMA = inline_serializer("Job", fields={
    "job_id": serializers.UUIDField(),
    "status": serializers.ChoiceField(choices=["queued", "started", "finished", "failed", "canceled"]),
    "queue": serializers.CharField(),
    "attempts": serializers.IntegerField(),
    "progress": inline_serializer("JobProgress", fields={
        "tasks_done": serializers.IntegerField(), "tasks_total": serializers.IntegerField()}),
    "error": serializers.CharField(allow_null=True),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
    "result": inline_serializer("JobResult", allow_null=True, fields={
        "results": serializers.DictField(child=serializers.CharField()),
        "errors": serializers.DictField(child=serializers.CharField()),
        "metadata": serializers.DictField(),
    }),
})


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ERROR_SCHEMA) for code in codes}


def accepted(job) -> Response:
    return Response({"job_id": str(job.id), "status": job.status, "message": "Job queued for processing"},
                    status=status.HTTP_202_ACCEPTED)


class JobAnalyzeApi(APIView):
    @extend_schema(request=AnalyzeSerializer, responses={202: JOB_ACCEPTED_SCHEMA, **error_responses(400, 401, 413, 415)},
                   summary="Submit a transcript and named tasks for analysis")
    def post(self, request: Request) -> Response:
        serializer = AnalyzeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = job_create(owner=request.user, request=JobRequest(
            provider=data["provider"],
            model=data["model"],
            transcript=data["transcript"],
            system_prompt=data.get("system_prompt", ""),
            tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in data["tasks"]],
            params={k: data[k] for k in ("max_output_tokens", "temperature") if data.get(k) is not None},
        ))
        return accepted(job)


class JobDetailApi(APIView):
    @extend_schema(responses={200: JOB_SCHEMA, **error_responses(401, 404)}, summary="A job's status and result")
    def get(self, request: Request, job_id: str) -> Response:
        job = job_for_user(user=request.user, job_id=job_id)
        if job is None:
            raise NotFound("No such job.")
        return Response(job_document(job))


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
    "tasks": serializers.DictField(child=ESTIMATE_TASK_SCHEMA),
    "price_unknown": serializers.BooleanField(required=False),
    "note": serializers.CharField(required=False),
})


class JobEstimateApi(APIView):
    @extend_schema(request=AnalyzeSerializer, responses={200: ESTIMATE_SCHEMA, **error_responses(400, 401, 413, 415)},
                   summary="Token counts and the cost range of an analyze request, before anything runs")
    def post(self, request: Request) -> Response:
        # The same body and validation as analyze, so an estimate answers for exactly what analyze would run.
        serializer = AnalyzeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        estimate = estimate_job(
            transcript=data["transcript"],
            provider=data["provider"],
            model=data["model_info"],
            system_prompt=data.get("system_prompt", ""),
            tasks=[TaskSpec(name=name, prompt=prompt) for name, prompt in data["tasks"]],
            max_output_tokens=data.get("max_output_tokens"),
        )
        return Response(estimate.as_dict())
