"""Result reuse: an identical task of the same owner within the TTL costs nothing and calls nobody."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Task
from tests.conftest import work_burst
from tests.jobs.faults import TEXT, sent, task_prompts

pytestmark = pytest.mark.django_db(transaction=True)

PROMPTS = task_prompts("reuse", 2)


def run(client, **extra) -> dict:
    data = {"transcript": TEXT, "provider": "openai", "model": "gpt-4o-mini", "tasks": PROMPTS, **extra}
    response = client.post("/api/v1/jobs/analyze", data, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    return client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()


def test_identical_tasks_reuse_the_finished_output_at_zero_cost(alice_client, emulator):
    first = run(alice_client)
    assert first["result"]["metadata"]["total_cost"] > 0
    second = run(alice_client)
    assert second["status"] == "finished"
    assert second["result"]["results"] == first["result"]["results"]
    metadata = second["result"]["metadata"]
    assert metadata["total_cost"] == 0
    assert all(t["reused"] is True and t["cost"] == 0 and t["calls"] == 0 for t in metadata["tasks"].values())
    assert all(t["reused"] is False for t in first["result"]["metadata"]["tasks"].values())
    assert all(sent(emulator, p) == 1 for p in PROMPTS.values())  # the second job made no provider call


def test_reuse_false_always_calls_the_provider(alice_client, emulator):
    run(alice_client)
    second = run(alice_client, reuse=False)
    assert all(t["reused"] is False and t["cost"] > 0 for t in second["result"]["metadata"]["tasks"].values())
    assert all(sent(emulator, p) == 2 for p in PROMPTS.values())


def test_another_users_results_are_never_reused(alice_client, bob_client, emulator):
    run(alice_client)
    bobs = run(bob_client)
    assert all(t["reused"] is False for t in bobs["result"]["metadata"]["tasks"].values())
    assert all(sent(emulator, p) == 2 for p in PROMPTS.values())


def test_a_different_system_prompt_or_parameter_is_not_the_same_task(alice_client, emulator):
    run(alice_client)
    run(alice_client, system_prompt="Answer in French.")
    run(alice_client, temperature=0.2)
    assert all(sent(emulator, p) == 3 for p in PROMPTS.values())


def test_results_older_than_the_ttl_are_not_reused(alice_client, emulator, settings):
    run(alice_client)
    Task.objects.update(finished_at=timezone.now() - timedelta(seconds=settings.RESULT_REUSE_TTL_SECONDS + 5))
    second = run(alice_client)
    assert all(t["reused"] is False for t in second["result"]["metadata"]["tasks"].values())
