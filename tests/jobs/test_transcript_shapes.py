"""Every transcript shape at submission: text, SRT, WebVTT, segments, uploaded files; malformed and oversized ones."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job
from tests.conftest import assert_error, transcript

pytestmark = pytest.mark.django_db

TASKS = {"summary": "Provide a brief summary"}
BASE = {"provider": "gemini", "model": "gemini-2.5-flash", "tasks": TASKS}


def submit(client, path: str = "/api/v1/jobs/analyze", **fields):
    return client.post(path, {**BASE, **fields}, format="json")


def job_of(response) -> Job:
    assert response.status_code == 202, response.content
    return Job.objects.get(id=response.json()["job_id"])


@pytest.mark.parametrize("name,fmt", [("TS3010a.srt", "srt"), ("TS3010a.vtt", "vtt")])
def test_captions_are_detected_and_normalized_to_timed_speaker_turns(alice_client, name, fmt):
    job = job_of(submit(alice_client, transcript=transcript(name)))
    assert job.transcript_format == fmt
    lines = job.transcript.split("\n")
    assert lines[0].startswith("[00:00:00] Project Manager: So welcome .")
    assert lines[1] == "[00:00:15] Industrial Designer: {vocalsound}"
    assert "-->" not in job.transcript and "<v " not in job.transcript
    # The same 168 turns as the plain-text meeting, whichever caption format carried them.
    assert len(lines) == len(transcript("TS3010a.txt").strip().split("\n"))


def test_plain_text_keeps_its_speakers_and_named_format_is_honoured(alice_client):
    job = job_of(submit(alice_client, transcript=transcript("ES2009b.txt"), format="text"))
    assert job.transcript_format == "text"
    assert job.transcript.startswith("Project Manager:") or ":" in job.transcript.split("\n")[0]


def test_vtt_voice_tags_markup_and_merging(alice_client):
    vtt = ("WEBVTT\n\n00:01:02.000 --> 00:01:04.000\n<v Alice>We ship <b>Friday</b>.</v>\n\n"
           "00:01:04.500 --> 00:01:06.000\n<v Alice>Bob owns the release notes.\n\n"
           "00:01:07.000 --> 00:01:09.000\n<v.loud Bob>Agreed &amp; noted.\n")
    job = job_of(submit(alice_client, transcript=vtt))
    assert job.transcript == ("[00:01:02] Alice: We ship Friday. Bob owns the release notes.\n"
                              "[00:01:07] Bob: Agreed & noted.")


def test_segments_list_becomes_turns(alice_client):
    segments = [
        {"speaker": "Host", "start": 0, "end": 4.2, "text": "Welcome to the show."},
        {"speaker": "Host", "start": 4.2, "end": 6, "text": "Today: budgets."},
        {"speaker": "Guest", "start": "00:00:07.500", "text": "Thanks for having me."},
        {"text": "(applause)"},
    ]
    job = job_of(submit(alice_client, segments=segments))
    assert job.transcript_format == "segments"
    assert job.transcript == ("[00:00:00] Host: Welcome to the show. Today: budgets.\n"
                              "[00:00:07] Guest: Thanks for having me.\n(applause)")


@pytest.mark.parametrize("filename,fmt", [("meeting.srt", "srt"), ("meeting.vtt", "vtt"), ("meeting.txt", "text")])
def test_multipart_upload_with_tasks_as_a_json_string(alice_client, filename, fmt):
    source = {"srt": "TS3010a.srt", "vtt": "TS3010a.vtt", "text": "TS3010a.txt"}[fmt]
    upload = SimpleUploadedFile(filename, transcript(source).encode(), content_type="application/octet-stream")
    response = alice_client.post("/api/v1/jobs/analyze", {
        "file": upload, "provider": "gemini", "model": "gemini-2.5-flash",
        "tasks": json.dumps({"summary": "Provide a brief summary", "actions": "List action items"}),
        "max_output_tokens": "500",
    }, format="multipart")
    job = job_of(response)
    assert job.transcript_format == fmt
    assert "Project Manager: So welcome ." in job.transcript
    assert [t.name for t in job.tasks.all()] == ["summary", "actions"]
    assert job.params == {"max_output_tokens": 500}


def test_multipart_json_segments_file(alice_client):
    data = {"segments": [{"speaker": "A", "start": 1, "text": "One."}, {"speaker": "B", "start": 3, "text": "Two."}]}
    upload = SimpleUploadedFile("captions.json", json.dumps(data).encode(), content_type="application/json")
    job = job_of(alice_client.post("/api/v1/jobs/analyze", {
        "file": upload, "provider": "gemini", "model": "gemini-2.5-flash", "tasks": json.dumps(TASKS),
    }, format="multipart"))
    assert job.transcript == "[00:00:01] A: One.\n[00:00:03] B: Two."


def test_malformed_srt_is_400_naming_the_line(alice_client):
    srt = "1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 -> 00:00:04,000\nWorld\n"
    error = assert_error(submit(alice_client, transcript=srt), 400, "validation_error", "transcript")
    assert "line 6" in error["fields"]["transcript"][0]
    assert Job.objects.count() == 0


def test_malformed_uploaded_vtt_is_400_on_file_naming_the_line(alice_client):
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHi\n\n00:00:xx.000 --> 00:00:04.000\nThere\n"
    upload = SimpleUploadedFile("bad.vtt", vtt.encode())
    response = alice_client.post("/api/v1/jobs/analyze", {**BASE, "tasks": json.dumps(TASKS), "file": upload},
                                 format="multipart")
    error = assert_error(response, 400, "validation_error", "file")
    assert "line 6" in error["fields"]["file"][0]


@pytest.mark.parametrize("fields,field", [
    ({"transcript": "WEBVTT\n\n"}, "transcript"),  # captions without any text
    ({"transcript": "Hello there", "format": "vtt"}, "transcript"),  # named vtt, no header
    ({"transcript": "Hi", "format": "docx"}, "format"),
    ({"segments": [{"speaker": "A"}]}, "segments"),
    ({"segments": "not a list"}, "segments"),
    ({"transcript": "Hi", "segments": [{"text": "Hi"}]}, "segments"),  # two sources
])
def test_bad_transcripts_are_400_naming_the_field(alice_client, fields, field):
    assert_error(submit(alice_client, **fields), 400, "validation_error", field)


def test_unsupported_upload_type_and_non_utf8_are_400(alice_client):
    for upload in (SimpleUploadedFile("talk.docx", b"PK\x03\x04"), SimpleUploadedFile("talk.txt", b"\xff\xfe\x00bad")):
        response = alice_client.post("/api/v1/jobs/analyze", {**BASE, "tasks": json.dumps(TASKS), "file": upload},
                                     format="multipart")
        assert_error(response, 400, "validation_error", "file")


def test_transcript_over_the_character_limit_is_413(alice_client, settings):
    settings.MAX_TRANSCRIPT_CHARS = 5_000
    error = assert_error(submit(alice_client, transcript=transcript("TS3010a.txt")), 413, "payload_too_large")
    assert "MAX_TRANSCRIPT_CHARS" in error["message"] and "5,000" in error["message"]
    assert Job.objects.count() == 0


def test_transcript_over_the_token_limit_is_413(alice_client, settings):
    settings.MAX_TRANSCRIPT_TOKENS = 1_000
    error = assert_error(submit(alice_client, transcript=transcript("TS3010a.txt")), 413, "payload_too_large")
    assert "MAX_TRANSCRIPT_TOKENS" in error["message"]


def test_other_content_types_stay_415(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", "transcript=hi", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_the_estimate_endpoint_reads_the_same_shapes(alice_client):
    response = submit(alice_client, path="/api/v1/jobs/estimate", transcript=transcript("TS3010a.vtt"))
    assert response.status_code == 200, response.content
    upload = SimpleUploadedFile("m.srt", b"1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\nbroken\n")
    response = alice_client.post("/api/v1/jobs/estimate", {**BASE, "tasks": json.dumps(TASKS), "file": upload},
                                 format="multipart")
    assert_error(response, 400, "validation_error", "file")


@pytest.mark.parametrize("field, value", [("transcript", 12345), ("transcript", True), ("transcript", ["a"]),
                                          ("system_prompt", 7), ("model", 4.5), ("provider", {"a": 1})])
def test_a_string_field_given_another_json_type_is_400(alice_client, field, value):
    # DRF's CharField turned 12345 into "12345" and queued a job on it.
    response = submit(alice_client, **{field: value})
    error = assert_error(response, 400, "validation_error", field)
    assert "must be a string" in error["fields"][field][0]
    assert not Job.objects.exists()
