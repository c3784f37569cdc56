"""Limits on what one request may carry: body and transcript size (413), tasks and prompts (400)."""

from __future__ import annotations

import json

import pytest

from jobs.models import Job
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

ANALYZE = "/api/v1/jobs/analyze"


def body(**extra) -> dict:
    return {"transcript": "Alice: we ship on Friday.\nBob: agreed.", "provider": "openai", "model": "gpt-4o-mini",
            "tasks": {"summary": "Provide a brief summary"}, **extra}


@pytest.fixture
def small_bodies(settings):
    settings.MAX_REQUEST_BYTES = 4096
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096


@pytest.mark.parametrize("path", [ANALYZE, "/api/v1/jobs/batch", "/api/v1/jobs/estimate", "/api/v1/tokens",
                                  "/api/v1/profiles"])
def test_json_body_over_the_limit_is_413(alice_client, small_bodies, path):
    response = alice_client.post(path, body(transcript="x" * 5000), format="json")
    error = assert_error(response, 413, "payload_too_large")
    assert "4096" in error["message"]


def test_multipart_body_over_the_limit_is_413(alice_client, small_bodies):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("meeting.txt", b"Alice: hi\n" * 1000, content_type="text/plain")
    data = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in body().items() if k != "transcript"}
    response = alice_client.post(ANALYZE, {**data, "file": upload}, format="multipart")
    assert_error(response, 413, "payload_too_large")
    assert not Job.objects.exists()


def test_body_within_the_limit_is_accepted(alice_client, small_bodies):
    assert alice_client.post(ANALYZE, body(), format="json").status_code == 202


def test_transcript_over_its_limit_is_413(alice_client, settings):
    settings.MAX_TRANSCRIPT_CHARS = 1000
    response = alice_client.post(ANALYZE, body(transcript="Alice: " + "word " * 400), format="json")
    error = assert_error(response, 413, "payload_too_large")
    assert "1,000" in error["message"]


def test_too_many_tasks_is_400(alice_client, settings):
    settings.MAX_TASKS = 3
    tasks = {f"task{i}": "Say something" for i in range(4)}
    error = assert_error(alice_client.post(ANALYZE, body(tasks=tasks), format="json"), 400, "validation_error")
    assert "tasks" in error["fields"]


def test_prompt_too_long_is_400(alice_client, settings):
    settings.MAX_PROMPT_CHARS = 100
    error = assert_error(alice_client.post(ANALYZE, body(tasks={"summary": "x" * 101}), format="json"), 400,
                         "validation_error")
    assert "tasks" in error["fields"]
