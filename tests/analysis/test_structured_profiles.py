"""The built-in profiles answer in checked JSON; `structured: false` keeps the free-text answers; `language`
(job or profile) reaches every task, the reduce step included; batch takes schemas too."""

from __future__ import annotations

import json

import pytest

from analysis.engine.transcripts import normalize_transcript
from analysis.engine.turns import time_range
from analysis.models import AnalysisProfile
from jobs.models import Job
from tests.conftest import transcript, work_burst


@pytest.fixture(autouse=True)
def builtins(request):
    if "django_db_setup" in request.fixturenames or any(m.name == "django_db" for m in request.node.iter_markers()):
        request.getfixturevalue("builtin_profiles")


def run(client, body, path="/api/v1/jobs/analyze"):
    response = client.post(path, body, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["job_id"]
    work_burst()
    return client.get(f"/api/v1/jobs/{job_id}").json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider,model", [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"),
                                            ("gemini", "gemini-2.5-flash")])
def test_meeting_notes_gives_action_items_with_owner_due_and_checked_citations(alice_client, provider, model):
    doc = run(alice_client, {"transcript": transcript("TS3010a.txt"), "provider": provider, "model": model,
                             "profile": "meeting-notes"})
    results, meta = doc["result"]["results"], doc["result"]["metadata"]["tasks"]
    assert doc["result"]["errors"] == {}
    assert isinstance(results["summary"], str) and isinstance(results["key_points"], str)
    items = results["action_items"]["action_items"]
    assert items and set(items[0]) == {"task", "owner", "due", "citations"}
    assert items[0]["citations"] and meta["action_items"]["citations_rejected"] == 0
    assert set(results["decisions"]) == {"decisions"} and set(results["open_questions"]) == {"open_questions"}


@pytest.mark.django_db(transaction=True)
def test_the_free_text_answers_stay_available(alice_client):
    doc = run(alice_client, {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
                             "profile": "meeting-notes", "structured": False})
    assert all(isinstance(v, str) for v in doc["result"]["results"].values())
    job = Job.objects.get(id=doc["job_id"])
    builtin = AnalysisProfile.objects.get(owner=None, name="meeting-notes")
    action = next(t for t in builtin.tasks if t["name"] == "action_items")
    assert job.tasks.get(name="action_items").prompt == action["text_prompt"]
    assert "Markdown table" in action["text_prompt"]


@pytest.mark.django_db(transaction=True)
def test_video_summary_chapters_lie_inside_the_transcript(alice_client):
    text = transcript("TS3010a.vtt")
    doc = run(alice_client, {"transcript": text, "provider": "gemini", "model": "gemini-2.5-flash",
                             "profile": "video-summary"})
    chapters = doc["result"]["results"]["chapters"]["chapters"]
    first, last = time_range(normalize_transcript(text))
    assert chapters
    for chapter in chapters:
        start, end = (sum(int(x) * f for x, f in zip(chapter[k].split(":"), (3600, 60, 1))) for k in ("start", "end"))
        assert first <= start <= end <= last + 120
    assert "times_rejected" not in doc["result"]["metadata"]["tasks"]["chapters"]


@pytest.mark.django_db(transaction=True)
def test_chapters_on_a_transcript_without_times_are_cited_by_turn_only(alice_client, emulator):
    # A model that invents times for a transcript without any: they are removed and counted.
    doc = run(alice_client, {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
                             "profile": "video-summary"})
    chapters = doc["result"]["results"]["chapters"]["chapters"]
    assert all(c["start"] is None and c["end"] is None and c["citations"] for c in chapters)
    assert doc["result"]["metadata"]["tasks"]["chapters"]["times_rejected"] == 2 * len(chapters)


@pytest.mark.django_db(transaction=True)
def test_language_reaches_every_task_and_the_reduce_step(alice_client, emulator, settings):
    settings.MAX_PROMPT_TOKENS = 16_000
    emulator.configure(max_context=16_000)
    text = transcript("Bed015.txt") + "\n" + transcript("covid_2.txt")
    doc = run(alice_client, {"transcript": text, "provider": "anthropic", "model": "claude-haiku-4-5",
                             "language": "pt-BR", "tasks": {"summary": "Provide a brief summary",
                                                            "facts": {"prompt": "Facts", "schema": {
                                                                "type": "object",
                                                                "properties": {"a": {"type": "string"}}}}}})
    assert doc["result"]["errors"] == {}
    records = emulator.requests("anthropic")
    assert len(records) > 4
    for record in records:  # map and reduce calls alike
        assert "BCP 47 tag pt-BR" in json.dumps(record["body"]), record["body"]["messages"][0]["content"][-1]
    assert Job.objects.get(id=doc["job_id"]).language == "pt-BR"


@pytest.mark.django_db(transaction=True)
def test_a_profile_language_applies_unless_the_job_names_one(alice_client, emulator):
    created = alice_client.post("/api/v1/profiles", {"name": "notas", "language": "pt-BR",
                                                     "tasks": [{"name": "s", "prompt": "Resuma"}]}, format="json")
    assert created.status_code == 201 and created.json()["language"] == "pt-BR"
    run(alice_client, {"transcript": "Alice: we ship on Friday, said the team", "provider": "openai",
                       "model": "gpt-4o-mini", "profile": "notas"})
    run(alice_client, {"transcript": "Alice: we ship on Friday, said the team", "provider": "openai",
                       "model": "gpt-4o-mini", "profile": "notas", "language": "de"})
    sent = [json.dumps(r["body"]) for r in sorted(emulator.requests("openai"), key=lambda r: r["seq"])]
    assert "BCP 47 tag pt-BR" in sent[0] and "BCP 47 tag de" in sent[1]


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["english please", "x", "pt_BR"])
def test_a_bad_language_is_a_400(alice_client, language):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: hi there", "provider": "openai", "model": "gpt-4o-mini", "language": language,
        "tasks": {"s": "Summarize"}}, format="json")
    assert response.status_code == 400 and "language" in response.json()["error"]["fields"]


@pytest.mark.django_db(transaction=True)
def test_batch_tasks_take_a_schema(alice_client):
    doc = run(alice_client, {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
                             "tasks": [{"task_name": "facts", "prompt": "Facts", "schema": {
                                 "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
                                       {"task_name": "summary", "prompt": "Summarize"}]},
              path="/api/v1/jobs/batch")
    assert doc["result"]["results"]["facts"] == {"n": 1}
    assert isinstance(doc["result"]["results"]["summary"], str)


@pytest.mark.django_db
def test_a_profile_with_a_bad_schema_is_a_400(alice_client):
    response = alice_client.post("/api/v1/profiles", {"name": "bad", "tasks": [
        {"name": "s", "prompt": "x", "schema": {"type": "string"}}]}, format="json")
    assert response.status_code == 400 and "object at its root" in response.json()["error"]["fields"]["tasks"][0]
