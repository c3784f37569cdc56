"""POST /api/v1/ask: a question across meetings as a job like analyze's, on the real PostgreSQL and Redis, the
provider the emulator behind the real SDKs.

Alice owns a few meetings; Bob owns one, which Alice's scope must never reach."""

from __future__ import annotations

import pytest

from jobs.models import Job, Task
from tests.conftest import assert_error, work_burst
from tests.jobs.asking import ask, sent_bodies, store
from tests.jobs.test_job_webhooks import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def meetings(alice, bob):
    return {
        "TS3010a": store(alice, "TS3010a", 0, tags=("design",)),
        "ES2009b": store(alice, "ES2009b", 3, tags=("design", "sales")),
        "education_0": store(alice, "education_0", 9, tags=("policy",)),
        "bob": store(bob, "Bro011", 1),
    }


def test_an_ask_is_queued_like_analyze_and_answers_with_checked_citations(alice_client, alice, meetings, emulator):
    response = ask(alice_client, "What did they decide about the remote control?", scope={"tag": "design"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"job_id", "status", "message"} and body["status"] == "queued"
    job = Job.objects.get(id=body["job_id"])
    assert job.kind == "ask" and job.transcript_ref is None and job.reuse_results is False
    # The question is its task's prompt; the scope, as sent and as resolved, is the job's.
    assert [task.name for task in job.tasks.all()] == ["answer"]
    assert "What did they decide about the remote control?" in job.tasks.get().prompt
    assert job.scope["given"] == {"tag": "design"}
    assert set(job.scope["transcripts"]) == {str(meetings["TS3010a"].id), str(meetings["ES2009b"].id)}
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert document["status"] == "finished", document["error"]
    result = document["result"]
    assert result["results"]["answer"] == "emulated text"
    answer = result["metadata"]["tasks"]["answer"]
    assert answer["citations_checked"] == 2 and answer["citations_rejected"] == 0
    cited = [c for ref in answer["references"] for c in ref["citations"]]
    assert cited and {c["transcript"] for c in cited} <= {str(meetings["TS3010a"].id), str(meetings["ES2009b"].id)}
    # What it read: both meetings whole (they fit one request), by date, every turn.
    metadata = result["metadata"]
    assert metadata["read"] == "whole" and "search_terms" not in metadata
    assert [(m["transcript"], m["title"], m["turns_read"]) for m in metadata["meetings"]] == [
        (str(meetings["TS3010a"].id), "TS3010a", meetings["TS3010a"].turn_count),
        (str(meetings["ES2009b"].id), "ES2009b", meetings["ES2009b"].turn_count)]
    assert metadata["turns_read"] == meetings["TS3010a"].turn_count + meetings["ES2009b"].turn_count
    [request] = sent_bodies(emulator)
    assert "[M1 T1] " in request and "[M2 T1] " in request and "Bro011" not in request
    # Billed as any job: the task's cost is the job's, and the ledger has it.
    assert metadata["total_cost"] == answer["cost"] > 0
    assert alice_client.get("/api/v1/account").json()["spending"]["spent_this_month"] == answer["cost"]


def test_other_jobs_documents_have_no_ask_keys(alice_client, meetings):
    response = alice_client.post("/api/v1/jobs/analyze", {"transcript_id": str(meetings["TS3010a"].id),
                                                          "provider": "openai", "model": "gpt-4o-mini",
                                                          "tasks": {"summary": "Summarize"}}, format="json")
    work_burst()
    metadata = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()["result"]["metadata"]
    assert not {"read", "search_terms", "meetings", "turns_read"} & set(metadata)


@pytest.mark.parametrize("scope,message", [
    ({}, "The scope is empty"),
    ({"transcripts": []}, "The scope is empty"),
    ({"transcripts": ["not-a-uuid"]}, None),
    ({"tag": "nothing-has-this-tag"}, "No transcript of yours matches this scope"),
    ({"speaker": "Nobody Atall"}, "No transcript of yours matches this scope"),
    ({"occurred_after": "2030-01-01T00:00:00Z"}, "No transcript of yours matches this scope"),
    ({"occurred_after": "2026-11-05T00:00:00Z", "occurred_before": "2026-11-01T00:00:00Z"}, None),
    ({"tag": "design", "transcripts": ["7f0d2cf6-3a43-4a5e-9a7e-6c0d5b0f1e21"]}, "not both"),
    ("everything", None),
])
def test_a_scope_that_selects_nothing_is_a_400_on_scope(alice_client, meetings, scope, message):
    error = assert_error(ask(alice_client, "Anything?", scope=scope), 400, "validation_error")
    # On `scope`, or on the part of it that is malformed (`scope.transcripts.0`).
    assert all(field.split(".")[0] == "scope" for field in error["fields"]), error
    if message:
        assert message in str(error["fields"]["scope"]), error
    assert not Job.objects.exists()


def test_another_users_transcript_is_a_400_that_names_it(alice_client, bob_client, meetings):
    bobs = str(meetings["bob"].id)
    error = assert_error(ask(alice_client, "What did Bob's meeting say?",
                             scope={"transcripts": [str(meetings["TS3010a"].id), bobs]}), 400, "validation_error",
                         "scope")
    assert f"No such transcript: {bobs}" in error["fields"]["scope"][0]
    # Bob asks over his own: fine; Alice's ids in his scope are as unknown to him.
    assert ask(bob_client, "What was said?", scope={"transcripts": [bobs]}).status_code == 202
    assert_error(ask(bob_client, "?", scope={"transcripts": [str(meetings["TS3010a"].id)]}), 400, field="scope")


def test_no_scope_is_all_of_the_owners_transcripts_and_none_of_anyone_elses(alice_client, meetings):
    job_id = ask(alice_client, "What happened?").json()["job_id"]
    job = Job.objects.get(id=job_id)
    assert job.scope["given"] is None
    assert set(job.scope["transcripts"]) == {str(meetings[n].id) for n in ("TS3010a", "ES2009b", "education_0")}


def test_a_user_without_transcripts_is_told_so(bob_client, db):
    error = assert_error(ask(bob_client, "Anything?"), 400, "validation_error", "scope")
    assert "no transcripts" in error["fields"]["scope"][0]


@pytest.mark.parametrize("body,field", [
    ({"question": ""}, "question"),
    ({"question": 42}, "question"),
    ({"question": "x" * 10_001}, "question"),
    ({"provider": "nope"}, "provider"),
    ({"model": "no-such-model"}, "model"),
    ({"language": "not a tag"}, "language"),
    ({"max_cost": -1}, "max_cost"),
    ({"callback_url": "http://127.0.0.1/hook"}, "callback_url"),
])
def test_bad_input_is_a_400_naming_the_field(alice_client, meetings, body, field):
    assert_error(ask(alice_client, **{"question": "What?", **body}), 400, "validation_error", field)


def test_filters_select_meetings_by_tag_speaker_and_date(alice_client, meetings):
    def scope_of(scope):
        return set(Job.objects.get(id=ask(alice_client, "?", scope=scope).json()["job_id"]).scope["transcripts"])

    assert scope_of({"tag": "sales"}) == {str(meetings["ES2009b"].id)}
    assert scope_of({"occurred_after": "2026-11-04T00:00:00Z"}) == {str(meetings["ES2009b"].id),
                                                                     str(meetings["education_0"].id)}
    assert scope_of({"tag": "design", "occurred_before": "2026-11-03T00:00:00Z"}) == {str(meetings["TS3010a"].id)}
    speaker = meetings["education_0"].speakers[0]
    assert str(meetings["education_0"].id) in scope_of({"speaker": speaker})


def test_idempotency_key_gives_the_same_job_and_a_changed_body_a_409(alice_client, meetings):
    headers = {"HTTP_IDEMPOTENCY_KEY": "ask-1"}
    first = alice_client.post("/api/v1/ask", {"question": "Q?", "provider": "openai", "model": "gpt-4o-mini"},
                              format="json", **headers)
    assert first.status_code == 202
    # A transcript stored since does not change what the same request meant.
    store(meetings["TS3010a"].owner, "IS1006b", 20)
    again = alice_client.post("/api/v1/ask", {"question": "Q?", "provider": "openai", "model": "gpt-4o-mini"},
                              format="json", **headers)
    assert again.status_code == 200 and again.json()["job_id"] == first.json()["job_id"]
    other = alice_client.post("/api/v1/ask", {"question": "Another?", "provider": "openai", "model": "gpt-4o-mini"},
                              format="json", **headers)
    assert_error(other, 409, "conflict")
    assert Job.objects.count() == 1


def test_routed_by_the_size_of_its_scope(alice_client, alice, meetings, settings):
    alice.plan = "pro"
    alice.save()
    settings.ROUTING_HIGH_MAX_CHARS = 10**9
    assert ask(alice_client, "?", scope={"tag": "design"}).json() and Job.objects.get().queue == "high"
    Job.objects.all().delete()
    settings.ROUTING_LOW_MIN_CHARS = len(meetings["TS3010a"].text) + len(meetings["ES2009b"].text)
    ask(alice_client, "?", scope={"tag": "design"})
    assert Job.objects.get().queue == "low"
    Job.objects.all().delete()
    ask(alice_client, "?", scope={"transcripts": [str(meetings["TS3010a"].id)]})
    assert Job.objects.get().queue == "high"


def test_a_retry_asks_the_same_question_over_the_same_meetings(alice_client, meetings, emulator):
    emulator.add_faults({"kind": "status", "status": 400, "provider": "openai", "times": 1})
    job_id = ask(alice_client, "Which decisions were made?", scope={"tag": "design"}).json()["job_id"]
    work_burst()
    assert Job.objects.get(id=job_id).status == "failed"
    # A meeting added to the tag since is not in the retried question's scope.
    store(meetings["TS3010a"].owner, "IS1006b", 20, tags=("design",))
    assert alice_client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished"
    assert {m["title"] for m in document["result"]["metadata"]["meetings"]} == {"TS3010a", "ES2009b"}
    assert "Which decisions were made?" in sent_bodies(emulator)[-1]


def test_a_meeting_deleted_before_the_run_is_left_out_and_all_deleted_fails_saying_why(alice_client, meetings):
    first = ask(alice_client, "?", scope={"tag": "design"}).json()["job_id"]
    second = ask(alice_client, "?", scope={"transcripts": [str(meetings["education_0"].id)]}).json()["job_id"]
    assert alice_client.delete(f"/api/v1/transcripts/{meetings['ES2009b'].id}").status_code == 204
    assert alice_client.delete(f"/api/v1/transcripts/{meetings['education_0'].id}").status_code == 204
    work_burst()
    read = alice_client.get(f"/api/v1/jobs/{first}").json()["result"]["metadata"]["meetings"]
    assert [m["title"] for m in read] == ["TS3010a"]
    gone = alice_client.get(f"/api/v1/jobs/{second}").json()
    assert gone["status"] == "failed" and "deleted" in gone["error"]
    assert Task.objects.get(job_id=second).tries == 0  # no provider call for nothing


def test_the_final_document_is_posted_to_the_callback(alice_client, meetings, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    receiver = Receiver()
    try:
        job_id = ask(alice_client, "?", scope={"tag": "sales"}, callback_url=receiver.url).json()["job_id"]
        work_burst()
        [(_, body)] = receiver.received
    finally:
        receiver.close()
    assert b'"answer"' in body and job_id.encode() in body and b'"turns_read"' in body


def test_asks_count_against_the_plans_submission_rate(alice_client, meetings, settings):
    settings.THROTTLE_RATES = {"free": {"submit": (2, 60), "api": (50, 60)}, "pro": {"submit": (4, 60), "api": (50, 60)}}
    analyze = {"transcript_id": str(meetings["TS3010a"].id), "provider": "openai", "model": "gpt-4o-mini",
               "tasks": {"summary": "Summarize"}}
    assert alice_client.post("/api/v1/jobs/analyze", analyze, format="json").status_code == 202
    assert ask(alice_client, "What?").status_code == 202
    throttled = ask(alice_client, "And then?")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) >= 1
