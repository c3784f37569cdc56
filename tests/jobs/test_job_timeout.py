"""Every RQ job gets an explicit timeout that outlasts the slowest job the settings allow
(RQ's default of 180 s would kill a job waiting out a provider's Retry-After)."""

from __future__ import annotations

import math
import subprocess
import sys

import django_rq
import pytest
from django.conf import settings
from rq.job import Job as RQJob

from tests.conftest import PROCESS_WAIT, ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def test_enqueued_jobs_carry_the_job_timeout(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: hi", "provider": "openai", "model": "gpt-4o-mini", "tasks": {"s": "Summarize"}},
        format="json")
    rq_job = RQJob.fetch(response.json()["job_id"], connection=django_rq.get_connection("default"))
    assert rq_job.timeout == settings.JOB_TIMEOUT > 180


def test_the_job_timeout_covers_every_task_waiting_out_its_retries():
    rounds = math.ceil(settings.MAX_TASKS / settings.TASK_CONCURRENCY)
    # A flex job's requests may take FLEX_REQUEST_TIMEOUT each.
    worst = rounds * (settings.PROVIDER_RETRY_MAX_TOTAL + max(settings.PROVIDER_REQUEST_TIMEOUT,
                                                              settings.FLEX_REQUEST_TIMEOUT))
    assert settings.JOB_TIMEOUT >= settings.JOB_TIMEOUT_MIN > worst
    assert all(queue["DEFAULT_TIMEOUT"] == settings.JOB_TIMEOUT for queue in settings.RQ_QUEUES.values())


def check_settings(**env: str | None) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process; a None value unsets that variable."""
    import os

    code = "import django; django.setup(); from django.conf import settings; print(settings.JOB_TIMEOUT)"
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": "scriptripper.settings", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=PROCESS_WAIT,
                          env={k: v for k, v in full.items() if v is not None})


def test_a_job_timeout_too_short_for_the_retry_bounds_is_refused_at_start_up():
    result = check_settings(JOB_TIMEOUT="600", PROVIDER_RETRY_MAX_TOTAL="600", PROVIDER_REQUEST_TIMEOUT="300",
                            FLEX_REQUEST_TIMEOUT="300")
    assert result.returncode != 0 and "JOB_TIMEOUT=600 is shorter than" in result.stderr


def test_without_job_timeout_it_grows_with_the_retry_bounds():
    result = check_settings(JOB_TIMEOUT=None, PROVIDER_RETRY_MAX_TOTAL="1800", MAX_TASKS="16", TASK_CONCURRENCY="8")
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == 2 * (1800 + 900) + 60  # FLEX_REQUEST_TIMEOUT is the slowest request
