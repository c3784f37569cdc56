"""Jobs and stored transcripts: analyzed by `transcript_id`, every job pointing at its transcript, and what
deleting a transcript does to the jobs that analyzed it. Jobs run by the project's worker against the emulator."""

from __future__ import annotations

import uuid

import pytest

from emulator.server import faults
from jobs.models import BatchRequest, Job
from tests.conftest import assert_error, transcript, work_burst
from tests.jobs.faults import sent, task_prompts
from transcripts.models import Transcript, TranscriptTurn

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = {"summary": "Provide a brief summary"}


def analyze(client, endpoint: str = "analyze", **body):
    payload = {"provider": "openai", "model": "gpt-4o-mini", "tasks": TASKS, **body}
    if endpoint == "batch":
        payload["tasks"] = [{"task_name": name, "prompt": prompt} for name, prompt in TASKS.items()]
    return client.post(f"/api/v1/jobs/{endpoint}", payload, format="json")


def stored(client, text: str) -> str:
    response = client.post("/api/v1/transcripts", {"transcript": text, "title": "Kick-off"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_transcript_stored_once_is_analyzed_twice_by_id(alice_client, emulator):
    text = transcript("TS3010a.txt")
    transcript_id = stored(alice_client, text)
    first = analyze(alice_client, transcript_id=transcript_id)
    second = analyze(alice_client, "batch", transcript_id=transcript_id, reuse=False)
    assert (first.status_code, second.status_code) == (202, 202), (first.content, second.content)
    work_burst()
    for response in (first, second):
        document = alice_client.get(f"/api/v1/jobs/{response.json()['job_id']}").json()
        assert document["status"] == "finished", document
        assert document["transcript_id"] == transcript_id and document["transcript_deleted"] is False
        assert "Provide a brief summary" in document["result"]["results"]["summary"]
    # Both read the stored text: the emulator saw the meeting twice, and it is stored once.
    bodies = [str(request["body"]) for request in emulator.requests()]
    assert len(bodies) == 2 and all("Project Manager" in body for body in bodies)
    assert Transcript.objects.count() == 1
    assert set(Job.objects.values_list("transcript", flat=True)) == {Transcript.objects.get().text}


def test_a_job_given_text_stores_its_transcript_or_finds_the_owners_row(alice_client, bob_client):
    text = transcript("ES2009b.txt")
    ids = [analyze(alice_client, transcript=text).json()["job_id"] for _ in range(2)]
    ids.append(analyze(bob_client, transcript=text).json()["job_id"])
    refs = [Job.objects.get(id=job_id).transcript_ref_id for job_id in ids]
    assert refs[0] == refs[1] != refs[2] and None not in refs
    assert Transcript.objects.count() == 2
    # A transcript stored first is the one a later job of the same text points at.
    earlier = stored(alice_client, transcript("Bro011.txt"))
    job_id = analyze(alice_client, transcript=transcript("Bro011.txt")).json()["job_id"]
    assert str(Job.objects.get(id=job_id).transcript_ref_id) == earlier
    assert alice_client.get(f"/api/v1/jobs/{job_id}").json()["transcript_id"] == earlier


@pytest.mark.parametrize("endpoint", ["analyze", "batch", "estimate"])
def test_transcript_id_and_a_transcript_are_one_or_the_other(alice_client, bob_client, endpoint):
    transcript_id = stored(alice_client, "Ann: Hello there, team.")
    assert_error(analyze(alice_client, endpoint, transcript_id=transcript_id, transcript="Ann: Hi."), 400,
                 "validation_error", "transcript_id")
    assert_error(analyze(alice_client, endpoint), 400, "validation_error", "transcript")
    for other in (str(uuid.uuid4()), stored(bob_client, "Bob: mine")):
        error = assert_error(analyze(alice_client, endpoint, transcript_id=other), 400, "validation_error",
                             "transcript_id")
        assert "No such transcript" in error["fields"]["transcript_id"][0]
    assert_error(analyze(alice_client, endpoint, transcript_id="nope"), 400, "validation_error", "transcript_id")
    assert not Job.objects.exists()


def test_the_estimate_by_id_is_the_estimate_of_the_text(alice_client):
    text = transcript("IS1006b.txt")
    by_id = analyze(alice_client, "estimate", transcript_id=stored(alice_client, text)).json()
    inline = analyze(alice_client, "estimate", transcript=text).json()
    assert by_id == inline and by_id["transcript_tokens"] > 1000


def test_deleting_a_transcript_keeps_its_jobs_results_and_they_cannot_be_retried(alice_client, emulator):
    prompts = task_prompts("gone", 2)
    emulator.add_faults(faults.server_error("openai", match=prompts["t1"], times=-1))
    transcript_id = stored(alice_client, transcript("TS3010a.txt"))
    job_id = analyze(alice_client, transcript_id=transcript_id, tasks=prompts, reuse=False).json()["job_id"]
    work_burst()
    before = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert before["status"] == "finished" and set(before["result"]["errors"]) == {"t1"}  # retryable, but ...
    BatchRequest.objects.create(job_id=job_id, task_name="t0", call_key="k", entry={"body": "the transcript"},
                                status=BatchRequest.Status.SUCCEEDED)

    assert alice_client.delete(f"/api/v1/transcripts/{transcript_id}").status_code == 204

    assert not Transcript.objects.exists() and not TranscriptTurn.objects.exists()
    job = Job.objects.get(id=job_id)
    assert (job.transcript, job.turns, job.transcript_ref_id, job.transcript_deleted) == ("", [], None, True)
    assert BatchRequest.objects.get(job_id=job_id).entry == {}
    after = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert after["transcript_id"] is None and after["transcript_deleted"] is True
    assert after["result"]["results"] == before["result"]["results"]  # the results stay
    error = assert_error(alice_client.post(f"/api/v1/jobs/{job_id}/retry"), 409, "conflict")
    assert "transcript" in error["message"] and "deleted" in error["message"]
    emulator.reset()
    work_burst()
    assert sent(emulator, prompts["t1"]) == 0 and Job.objects.get(id=job_id).status == "finished"
    assert_error(analyze(alice_client, transcript_id=transcript_id), 400, "validation_error", "transcript_id")


def test_a_transcript_with_a_job_queued_is_not_deleted(alice_client):
    transcript_id = stored(alice_client, "Ann: Hello there, team.")
    job_id = analyze(alice_client, transcript_id=transcript_id).json()["job_id"]
    error = assert_error(alice_client.delete(f"/api/v1/transcripts/{transcript_id}"), 409, "conflict")
    assert job_id in error["message"] and "cancel" in error["message"]
    assert Transcript.objects.filter(id=transcript_id).exists() and TranscriptTurn.objects.count() == 1
    assert Job.objects.get(id=job_id).transcript == "Ann: Hello there, team."
    assert alice_client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    assert alice_client.delete(f"/api/v1/transcripts/{transcript_id}").status_code == 204
    assert Job.objects.get(id=job_id).transcript_deleted


def test_deleting_a_job_keeps_its_transcript(alice_client):
    transcript_id = stored(alice_client, "Ann: Hello there, team.")
    job_id = analyze(alice_client, transcript_id=transcript_id).json()["job_id"]
    assert alice_client.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert alice_client.get(f"/api/v1/transcripts/{transcript_id}").status_code == 200
