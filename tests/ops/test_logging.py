"""Structured logs: JSON lines with job_id and task (LOG_FORMAT=json, the default in production), and
no transcript text, prompts or secrets at info."""

from __future__ import annotations

import json
import logging

import pytest

from scriptripper.logs import JsonFormatter
from tests.conftest import run_manage, worker_env

SNIPPET = "import logging; logging.getLogger('jobs.worker.entry').info('task done', extra={'job_id': 'j-1', 'task': 'summary'})"


def record(**extra) -> logging.LogRecord:
    rec = logging.LogRecord("jobs.worker.entry", logging.INFO, __file__, 1, "task %s", ("done",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_formatter_writes_one_json_object_with_the_extra_fields():
    line = JsonFormatter().format(record(job_id="1234", task="summary", tries=2, cost="0.001"))
    entry = json.loads(line)
    assert entry["message"] == "task done" and entry["level"] == "info" and entry["logger"] == "jobs.worker.entry"
    assert entry["job_id"] == "1234" and entry["task"] == "summary" and entry["tries"] == 2
    assert entry["time"].endswith("+00:00")
    assert "\n" not in line


def test_formatter_redacts_fields_that_would_carry_content_or_secrets():
    entry = json.loads(JsonFormatter().format(record(job_id="1", prompt="Summarize the secret merger",
                                                     transcript="CEO: we buy Acme", api_key="sk-live-123")))
    assert entry["prompt"] == entry["transcript"] == entry["api_key"] == "[redacted]"
    assert entry["job_id"] == "1"


def test_formatter_keeps_tracebacks_in_the_object():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = record()
        rec.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.subprocess
@pytest.mark.parametrize("env,is_json", [
    ({"LOG_FORMAT": "json"}, True),
    ({"ENVIRONMENT": "production", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com"}, True),
    ({"ENVIRONMENT": "production", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com", "LOG_FORMAT": "plain"},
     False),
    ({}, False),
])
def test_log_format_follows_the_environment(emulator, env, is_json):
    # DJANGO_SETTINGS_MODULE=tests.settings still reads these variables through scriptripper.settings.
    result = run_manage("shell", "-c", SNIPPET, env=worker_env(emulator, **env))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "task done" in line]
    assert lines, result.stderr[-2000:]
    line = lines[0]
    if is_json:
        entry = json.loads(line)
        assert entry["job_id"] == "j-1" and entry["task"] == "summary"
    else:
        assert line.endswith("INFO jobs.worker.entry task done")


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_a_worker_logs_json_with_job_ids_and_no_transcript_or_prompts(alice_client, emulator):
    transcript = "Quinn: the codename for the merger is BLUE HERON.\nRory: keep it quiet."
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": transcript, "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"summary": "Summarize the confidential merger plan", "risks": "List the legal risks"},
    }, format="json")
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    result = run_manage("rqworker", "high", "default", "low", "--burst",
                        env=worker_env(emulator, LOG_FORMAT="json", LOG_LEVEL="info"))
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    task_lines = [e for e in entries if e["message"] == "task done"]
    assert {e["task"] for e in task_lines} == {"summary", "risks"}
    assert all(e["job_id"] == job_id for e in task_lines)
    assert any(e["message"] == "job done" and e["job_id"] == job_id for e in entries)
    for secret in ("BLUE HERON", "Quinn", "confidential merger", "legal risks", "test-openai_api_key"):
        assert secret not in result.stderr, secret


@pytest.mark.subprocess
def test_gunicorn_writes_json_access_lines_with_the_request_fields(emulator, tmp_path):
    # gunicorn.conf.py (read from the working directory, as scripts/run.sh and the image run it).
    import socket
    import subprocess
    import sys

    from tests.conftest import PROCESS_WAIT, ROOT, http_status, wait_answering, wait_for

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = open(tmp_path / "gunicorn.out", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "scriptripper.wsgi:application", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", "-"],
                            cwd=ROOT, env=worker_env(emulator, LOG_FORMAT="json", DEBUG="false"), stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        # No token: answered, in the API's error shape.
        status = wait_answering(proc, lambda: http_status(f"http://127.0.0.1:{port}/api/v1/models?x=1"), "gunicorn")
        assert status == 401
        # The access line is written once the response has gone out.
        wait_for(lambda: "gunicorn.access" in (tmp_path / "gunicorn.out").read_text(), PROCESS_WAIT,
                 "gunicorn's access line")
    finally:
        proc.terminate()
        proc.wait(timeout=PROCESS_WAIT)
    out.seek(0)
    lines = [line for line in out.read().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line, access and error, is one JSON object
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert access, lines
    assert access[-1]["method"] == "GET" and access[-1]["path"] == "/api/v1/models"
    assert access[-1]["status"] == 401 and isinstance(access[-1]["duration_ms"], int)
    assert any(e["logger"] == "gunicorn.error" and "Listening at" in e["message"] for e in entries)
