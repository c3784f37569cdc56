"""POST/GET /api/v1/transcripts and GET/PATCH/DELETE /api/v1/transcripts/{id}: stored once per owner and text,
parsed into the turns citations name, listed with filters, and nobody else's."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis.engine.tokens import count_tokens
from analysis.engine.turns import parse_turns
from tests.conftest import assert_error, transcript
from transcripts.models import TOKEN_COUNT_MODEL, TOKEN_COUNT_PROVIDER, Transcript, TranscriptTurn
from transcripts.selectors import search_configs
from transcripts.services import transcript_create

pytestmark = pytest.mark.django_db

KEYS = ["id", "title", "occurred_at", "tags", "transcript_language", "turns", "speakers", "tokens", "created_at"]
SHORT = "Alice: We ship the beta on Friday.\nBob: Agreed; I will tell the customers.\nAlice: Good."


def post(client, **body):
    return client.post("/api/v1/transcripts", body, format="json")


def test_a_transcript_is_stored_parsed_into_numbered_turns(alice, alice_client):
    response = post(alice_client, transcript=SHORT, title=" Beta planning ", occurred_at="2026-11-03T14:00:00Z",
                    tags=["launch", "beta", "launch", " "], transcript_language="en")
    assert response.status_code == 201, response.content
    body = response.json()
    assert list(body) == KEYS
    assert body["title"] == "Beta planning" and body["occurred_at"] == "2026-11-03T14:00:00Z"
    assert body["tags"] == ["launch", "beta"] and body["transcript_language"] == "en"
    assert body["turns"] == 3 and body["speakers"] == ["Alice", "Bob"]
    stored = Transcript.objects.get(id=body["id"])
    assert stored.owner == alice and stored.format == "text"
    assert body["tokens"] == count_tokens(stored.text, provider=TOKEN_COUNT_PROVIDER, model=TOKEN_COUNT_MODEL)
    turns = list(TranscriptTurn.objects.filter(transcript=stored).values_list("number", "speaker", "text", "config"))
    assert turns == [(1, "Alice", "We ship the beta on Friday.", "english"),
                     (2, "Bob", "Agreed; I will tell the customers.", "english"), (3, "Alice", "Good.", "english")]
    assert alice_client.get(f"/api/v1/transcripts/{body['id']}/").json() == body


@pytest.mark.parametrize("name", ["TS3010a.srt", "TS3010a.vtt", "ES2009b.txt"])
def test_turn_numbers_and_times_are_the_engines(alice_client, name):
    body = post(alice_client, transcript=transcript(name)).json()
    stored = Transcript.objects.get(id=body["id"])
    expected = [(turn.index, turn.speaker or "", turn.start) for turn in parse_turns(stored.text)]
    assert list(TranscriptTurn.objects.filter(transcript=stored).order_by("number")
                .values_list("number", "speaker", "start")) == expected
    assert body["turns"] == len(expected) and stored.format == name.rsplit(".", 1)[1].replace("txt", "text")
    assert body["transcript_language"] is None and body["tags"] == [] and body["title"] == ""
    if not name.endswith(".txt"):
        assert expected[1][2] is not None  # captions carry times


def test_segments_and_a_multipart_upload_are_read_as_analyze_reads_them(alice_client):
    segments = [{"speaker": "Ann", "start": 0, "text": "Hello there."}, {"speaker": "Ben", "start": 4.5, "text": "Hi."}]
    body = post(alice_client, segments=segments).json()
    assert body["turns"] == 2 and body["speakers"] == ["Ann", "Ben"]
    upload = SimpleUploadedFile("meeting.vtt", transcript("ES2009b.vtt").encode(), content_type="text/vtt")
    response = alice_client.post("/api/v1/transcripts", {"file": upload, "tags": json.dumps(["design"]),
                                                         "title": "Design"}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["design"] and Transcript.objects.get(id=response.json()["id"]).format == "vtt"


def test_the_same_text_twice_is_one_row_for_one_user_and_two_for_two(alice_client, bob_client):
    first = post(alice_client, transcript=SHORT, title="First")
    again = post(alice_client, transcript=SHORT + "\n\n", title="Second")  # the same once normalized
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and again.json()["title"] == "First"  # unchanged
    bobs = post(bob_client, transcript=SHORT)
    assert bobs.status_code == 201 and bobs.json()["id"] != first.json()["id"]
    assert Transcript.objects.count() == 2


@pytest.mark.parametrize("body,field", [
    ({}, "transcript"),
    ({"transcript": "   "}, "transcript"),
    ({"transcript": SHORT, "segments": [{"text": "x"}]}, "segments"),
    ({"transcript": SHORT, "transcript_language": "not a language"}, "transcript_language"),
    ({"transcript": SHORT, "tags": "sales"}, "tags"),
    ({"transcript": SHORT, "tags": ["x" * 51]}, "tags"),
    ({"transcript": SHORT, "tags": [f"t{n}" for n in range(51)]}, "tags"),
    ({"transcript": SHORT, "occurred_at": "yesterday"}, "occurred_at"),
    ({"transcript": SHORT, "title": 5}, "title"),
    ({"transcript": SHORT, "title": "x" * 201}, "title"),
])
def test_bad_input_is_400_naming_the_field(alice_client, body, field):
    assert_error(post(alice_client, **body), 400, "validation_error", field)


def test_the_transcript_size_limits_are_413(alice_client, settings):
    settings.MAX_TRANSCRIPT_CHARS = 1_000
    error = assert_error(post(alice_client, transcript=transcript("TS3010a.txt")), 413, "payload_too_large")
    assert "MAX_TRANSCRIPT_CHARS" in error["message"]
    settings.MAX_REQUEST_BYTES = 2_000
    upload = SimpleUploadedFile("m.txt", transcript("TS3010a.txt").encode(), content_type="text/plain")
    assert_error(alice_client.post("/api/v1/transcripts", {"file": upload}, format="multipart"), 413,
                 "payload_too_large")
    assert not Transcript.objects.exists()


def test_another_users_transcript_is_404_also_by_guessing(alice_client, bob_client):
    alices = post(alice_client, transcript=SHORT).json()["id"]
    for method in ("get", "delete"):
        assert_error(getattr(bob_client, method)(f"/api/v1/transcripts/{alices}"), 404, "not_found")
    assert_error(bob_client.patch(f"/api/v1/transcripts/{alices}", {"title": "mine"}, format="json"), 404)
    assert_error(bob_client.get(f"/api/v1/transcripts/{uuid.uuid4()}"), 404, "not_found")
    assert_error(bob_client.get("/api/v1/transcripts/not-a-uuid"), 404, "not_found")
    assert bob_client.get("/api/v1/transcripts").json()["results"] == []
    assert Transcript.objects.get(id=alices).title == ""


def test_patch_changes_the_description_and_a_new_language_reconfigures_the_turns(alice_client):
    created = post(alice_client, transcript="Ann: The runners were running late.").json()
    url = f"/api/v1/transcripts/{created['id']}"
    search = lambda q: alice_client.get("/api/v1/search", {"q": q}).json()["results"]
    assert search("run") == []  # `simple`: no stemming
    response = alice_client.patch(url, {"title": "Standup", "tags": ["daily"], "transcript_language": "en-GB",
                                        "occurred_at": "2026-01-02T09:00:00Z"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["tags"], body["transcript_language"], body["occurred_at"]) == (
        "Standup", ["daily"], "en-GB", "2026-01-02T09:00:00Z")
    assert set(TranscriptTurn.objects.values_list("config", flat=True)) == {"english"}
    assert [hit["turn"] for hit in search("run")] == [1]  # english stems running -> run
    assert alice_client.patch(url, {"transcript_language": "xx"}, format="json").json()["transcript_language"] == "xx"
    assert set(TranscriptTurn.objects.values_list("config", flat=True)) == {"simple"}
    assert_error(alice_client.patch(url, {"tags": [1]}, format="json"), 400, "validation_error", "tags")


def test_delete_removes_the_turns_and_their_search_entries(alice_client):
    created = post(alice_client, transcript=SHORT).json()
    response = alice_client.delete(f"/api/v1/transcripts/{created['id']}")
    assert response.status_code == 204
    assert not Transcript.objects.exists() and not TranscriptTurn.objects.exists()
    assert_error(alice_client.get(f"/api/v1/transcripts/{created['id']}"), 404)
    assert_error(alice_client.delete(f"/api/v1/transcripts/{created['id']}"), 404)
    # The same text again is a new transcript.
    assert post(alice_client, transcript=SHORT).status_code == 201


def test_the_list_is_paginated_latest_meeting_first_and_filtered(alice_client, bob_client):
    made = {}
    for day, (tags, text) in enumerate([(["sales"], "Ann: Pricing for the enterprise plan."),
                                        (["sales", "acme"], "Ben: Acme wants a discount.\nAnn: No discount."),
                                        (["eng"], "Cid: The deploy failed twice."),
                                        ([], "Ann: Lunch?")], 1):
        made[day] = post(alice_client, transcript=text, tags=tags, occurred_at=f"2026-03-0{day}T10:00:00Z").json()["id"]
    post(bob_client, transcript="Ann: Pricing for bob.", tags=["sales"])
    listed = lambda **params: [item["id"] for item in alice_client.get("/api/v1/transcripts", params).json()["results"]]
    assert listed() == [made[4], made[3], made[2], made[1]]
    assert listed(tag="sales") == [made[2], made[1]]
    assert listed(speaker="Cid") == [made[3]]
    assert listed(q="discount") == [made[2]]
    assert listed(q="pricing OR deploy") == [made[3], made[1]]
    assert listed(occurred_after="2026-03-02T00:00:00Z", occurred_before="2026-03-04T00:00:00Z") == [made[3], made[2]]
    first = alice_client.get("/api/v1/transcripts", {"limit": 3}).json()
    assert [item["id"] for item in first["results"]] == [made[4], made[3], made[2]] and first["previous"] is None
    second = alice_client.get(first["next"]).json()
    assert [item["id"] for item in second["results"]] == [made[1]] and second["next"] is None
    assert list(first["results"][0]) == KEYS
    assert_error(alice_client.get("/api/v1/transcripts", {"cursor": "garbage"}), 400, "validation_error", "cursor")
    assert_error(alice_client.get("/api/v1/transcripts", {"q": " "}), 400, "validation_error", "q")
    assert_error(alice_client.get("/api/v1/transcripts", {"occurred_after": "2026-03-02T00:00:00Z",
                                                          "occurred_before": "2026-03-01T00:00:00Z"}), 400)


def test_a_search_parses_the_query_in_the_configurations_of_the_owners_transcripts_only(alice_client, alice, bob):
    """Each configuration among a user's transcripts costs every search an index probe: the set follows the
    transcripts as they are stored, change language and are deleted."""
    english = post(alice_client, transcript="Ann: The runners were running late.", transcript_language="en").json()
    untagged = post(alice_client, transcript="Ben: Nobody said which language.").json()
    transcript_create(owner=bob, transcript="Cid: Bonjour.", transcript_language="fr")
    assert search_configs(alice) == ["english", "simple"] and search_configs(bob) == ["french"]
    assert alice_client.delete(f"/api/v1/transcripts/{untagged['id']}").status_code == 204
    assert search_configs(alice) == ["english"]
    response = alice_client.patch(f"/api/v1/transcripts/{english['id']}", {"transcript_language": "fr-CA"},
                                  format="json")
    assert response.status_code == 200 and search_configs(alice) == ["french"]
    hits = alice_client.get("/api/v1/search", {"q": "runners"}).json()["results"]  # now parsed in French
    assert [(hit["transcript"], hit["turn"]) for hit in hits] == [(english["id"], 1)]
