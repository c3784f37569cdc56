"""GET /api/v1/search over thirty real meetings (../shared/transcripts and its corpus/): PostgreSQL's full-text
search, its web search syntax, every filter, keyset pages, and nobody else's or a deleted transcript's turns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from tests.conftest import TRANSCRIPTS, assert_error, make_user
from transcripts.models import Transcript, TranscriptTurn
from transcripts.selectors import snippet_anchor, turns_matching
from transcripts.services import transcript_create, transcript_delete

pytestmark = pytest.mark.django_db

# Planted in one turn each: words no meeting of the corpus has. The first in an English meeting (the `english`
# configuration), the second in a parliamentary one stored without a language (`simple`).
PLANTED = ("ES2007a", 40, " The zeppelin budget freeze starts on Thursday.")
PLANTED_SIMPLE = ("education_7", 20, " Our xylophone fund is gone.")
KINDS = {"ES": "product", "IS": "product", "TS": "product", "Be": "research", "Br": "research", "Bm": "research",
         "co": "parliament", "ed": "parliament"}


def meeting_files() -> list:
    files = sorted(TRANSCRIPTS.glob("*.txt")) + sorted((TRANSCRIPTS / "corpus").glob("*.txt"))
    assert len(files) == 30
    return files


def planted(text: str, line: int, words: str) -> str:
    lines = text.split("\n")
    lines[line - 1] += words
    return "\n".join(lines)


@pytest.fixture(scope="module")
def corpus(django_db_blocker):
    """Alice's thirty meetings (dated one a day in January, tagged by kind), stored once for the module; bob's
    one meeting with the planted words too. Removed at the end."""
    with django_db_blocker.unblock():
        alice, bob = make_user("alice", plan="free"), make_user("bob", plan="free")
        meetings = {}
        for day, path in enumerate(meeting_files(), 1):
            text = path.read_text(encoding="utf-8")
            for name, line, words in (PLANTED, PLANTED_SIMPLE):
                if path.stem == name:
                    text = planted(text, line, words)
            kind = KINDS[path.stem[:2]]
            meetings[path.stem], _ = transcript_create(
                owner=alice, transcript=text, title=path.stem, tags=[kind], occurred_at=datetime(2026, 1, day, tzinfo=UTC),
                transcript_language="" if kind == "parliament" else "en")
        bobs, _ = transcript_create(owner=bob, transcript="Bob: The zeppelin budget freeze is mine.", title="Bob's")
        yield {"meetings": meetings, "bobs": bobs}
        Transcript.objects.filter(owner__in=[alice, bob]).delete()
        alice.delete()
        bob.delete()


def search(client, **params) -> list[dict]:
    response = client.get("/api/v1/search", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_planted_phrase_is_found_with_its_turn_number_and_speaker(corpus, alice_client):
    name, line, _ = PLANTED
    meeting = corpus["meetings"][name]
    speaker = meeting.text.split("\n")[line - 1].split(":", 1)[0]
    hits = search(alice_client, q="zeppelin budget")
    assert hits == [{"transcript": str(meeting.id), "title": name, "turn": line, "speaker": speaker, "start": None,
                     "snippet": hits[0]["snippet"]}]
    assert "**zeppelin** **budget**" in hits[0]["snippet"] and "Thursday" in hits[0]["snippet"]
    # The turn as the engine numbers it: line `line` of the stored text, what a citation would name.
    assert meeting.text.split("\n")[line - 1].endswith(PLANTED[2])
    # Stemmed in English: "freezes" finds "freeze"; in `simple`, the word as written only.
    assert [hit["turn"] for hit in search(alice_client, q="zeppelin freezes")] == [line]
    assert [hit["title"] for hit in search(alice_client, q="xylophone")] == [PLANTED_SIMPLE[0]]
    assert search(alice_client, q="xylophones") == []


def test_web_search_syntax_quotes_or_and_minus(corpus, alice_client):
    assert len(search(alice_client, q='"budget freeze"')) == 1
    assert search(alice_client, q='"freeze budget"') == []  # both words are there, not in this order
    assert {hit["title"] for hit in search(alice_client, q="zeppelin OR xylophone")} == {PLANTED[0], PLANTED_SIMPLE[0]}
    assert search(alice_client, q="zeppelin -thursday") == []
    assert len(search(alice_client, q="zeppelin -xylophone")) == 1
    # Only an English stop word: nothing to look for in English (not an error); `simple` keeps every word.
    assert search(alice_client, q="the", tag="product") == []
    assert {hit["title"] for hit in search(alice_client, q="the", limit=100)} <= {
        name for name in corpus["meetings"] if KINDS[name[:2]] == "parliament"}


def test_every_filter_narrows_the_hits(corpus, alice_client):
    meetings = corpus["meetings"]
    everything = search(alice_client, q="remote control", limit=100)
    assert len({hit["transcript"] for hit in everything}) > 2 and len(everything) == 100
    planted_id, speaker = str(meetings[PLANTED[0]].id), search(alice_client, q="zeppelin")[0]["speaker"]
    assert {hit["transcript"] for hit in search(alice_client, q="remote control", transcript=planted_id,
                                                limit=100)} == {planted_id}
    assert search(alice_client, q="zeppelin", transcript=str(meetings["TS3010a"].id)) == []
    by_speaker = search(alice_client, q="remote", speaker=speaker, limit=100)
    assert by_speaker and {hit["speaker"] for hit in by_speaker} == {speaker}
    assert search(alice_client, q="zeppelin", speaker="Nobody") == []
    tagged = search(alice_client, q="meeting", tag="research", limit=100)
    research = {str(meeting.id) for meeting in meetings.values() if meeting.tags == ["research"]}
    assert tagged and {hit["transcript"] for hit in tagged} <= research
    assert {hit["transcript"] for hit in search(alice_client, q="meeting", limit=100)} - research
    in_range = search(alice_client, q="meeting", occurred_after="2026-01-05T00:00:00Z",
                      occurred_before="2026-01-08T00:00:00Z", limit=100)
    days = {Transcript.objects.get(id=hit["transcript"]).occurred_at.day for hit in in_range}
    assert in_range and days <= {5, 6, 7}
    assert search(alice_client, q="zeppelin", occurred_before="2026-01-01T00:00:00Z") == []


def test_never_another_users_nor_a_deleted_transcripts_turns(corpus, alice_client, bob_client):
    assert [hit["title"] for hit in search(bob_client, q="zeppelin")] == ["Bob's"]
    assert [hit["title"] for hit in search(bob_client, q="zeppelin OR remote OR xylophone")] == ["Bob's"]
    assert search(bob_client, q="zeppelin", transcript=str(corpus["meetings"][PLANTED[0]].id)) == []
    assert all(hit["transcript"] != str(corpus["bobs"].id) for hit in search(alice_client, q="zeppelin"))
    transcript_delete(transcript=corpus["meetings"][PLANTED_SIMPLE[0]])  # rolled back after the test
    assert search(alice_client, q="xylophone") == []


def test_pages_follow_the_rank_then_the_turn(corpus, alice_client):
    everything = search(alice_client, q="remote OR budget", limit=100)
    pages, response = [], alice_client.get("/api/v1/search", {"q": "remote OR budget", "limit": 7}).json()
    while True:
        pages.append(response["results"])
        if response["next"] is None or sum(map(len, pages)) >= 100:
            break
        assert "cursor=" in response["next"] and "q=remote" in response["next"]
        response = alice_client.get(response["next"]).json()
    walked = [hit for page in pages for hit in page][:100]
    assert all(len(page) == 7 for page in pages[:-1])
    assert [(hit["transcript"], hit["turn"]) for hit in walked] == [(hit["transcript"], hit["turn"])
                                                                    for hit in everything]
    few = alice_client.get("/api/v1/search", {"q": "zeppelin"}).json()
    assert len(few["results"]) == 1 and few["next"] is None


@pytest.mark.parametrize("params,field", [
    ({}, "q"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 301}, "q"),
    ({"q": "budget", "transcript": "nope"}, "transcript"), ({"q": "budget", "cursor": "garbage"}, "cursor"),
    ({"q": "budget", "cursor": "WzEsMl0"}, None),  # a well-formed cursor is a position, not an error
    ({"q": "budget", "limit": 0}, "limit"), ({"q": "budget", "occurred_after": "soon"}, "occurred_after"),
])
def test_bad_search_parameters_are_400(alice_client, params, field):
    response = alice_client.get("/api/v1/search", params)
    if field is None:
        assert response.status_code == 200
    else:
        assert_error(response, 400, "validation_error", field)


def test_the_turn_search_uses_the_gin_index(corpus, alice):
    """One arm per configuration: each `config = c AND search @@ websearch_to_tsquery(c, q)` reads the GIN
    index (a configuration read from each row could not), the arms joined by a BitmapOr."""
    turns = turns_matching(user=alice, q="zeppelin freezes")  # 'freez' in English, 'freezes' in `simple`
    sql, params = turns.query.sql_with_params()
    assert sql.count("websearch_to_tsquery(%s::regconfig") == 2 and {"english", "simple"} <= set(params)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Transcript._meta.db_table}, {TranscriptTurn._meta.db_table}")
    plan = turns.explain()
    assert plan.count("Bitmap Index Scan on transcript_turn_search") == 2, plan
    assert "''zeppelin'' & ''freez''" in plan and "''zeppelin'' & ''freezes''" in plan, plan


def test_a_snippet_shows_the_match_deep_in_a_long_turn(alice_client, alice):
    """A snippet is cut from a window of a long turn around the words as typed, else the query's first word; where
    that window holds no match (the stem first seen inside another word), from the whole turn: the match is shown
    either way."""
    filler = " ".join(f"We went over item {n} of the agenda and moved on." for n in range(60))  # ~3,000 chars
    text = (f"Ann: {filler} Then the quokka ledger came up.\n"
            f"Bob: A scare about the {filler} so the care planner stays.\n"
            f"Cy: The wombat came first. {filler} Then the wombat tally was read out.\n")
    stored, _ = transcript_create(owner=alice, transcript=text, transcript_language="en")
    (deep,) = search(alice_client, q="quokka ledger")
    assert deep["turn"] == 1 and "**quokka** **ledger** came up" in deep["snippet"]
    (elsewhere,) = search(alice_client, q='"care planner"')  # 'care' is first in "scare", 3,000 chars earlier
    assert elsewhere["turn"] == 2 and "**care** **planner** stays" in elsewhere["snippet"]
    # Only "scare" is in the window of the first "care":
    (either,) = search(alice_client, q="care OR planner", transcript=str(stored.id))
    assert either["turn"] == 2 and "**care**" in either["snippet"] and "**scare**" not in either["snippet"]
    # The first "wombat" stands alone, 3,000 characters before the two words together.
    (together,) = search(alice_client, q="Wombat  tally")
    assert together["turn"] == 3 and "**wombat** **tally** was read out" in together["snippet"]


def test_a_snippet_window_starts_at_the_words_as_typed():
    assert snippet_anchor("Market  Research") == "market research"
    assert snippet_anchor('budget "zeppelin  budget" freeze') == "zeppelin budget"
    assert snippet_anchor("pricing or cost") == "pricing"
    assert snippet_anchor("launch date -draft") == "launch date"
    assert snippet_anchor("-draft") == ""


def test_a_hit_is_rendered_as_the_schema_documents_it(corpus, alice_client, alice):
    """The endpoint builds each hit directly (transcripts.api.search_hit): the same document as the serializer the
    OpenAPI schema is generated from."""
    from transcripts.selectors import turns_search
    from transcripts.serializers import SearchHitSerializer

    hits = turns_search(user=alice, q="remote OR zeppelin OR xylophone", limit=100)
    documented = SearchHitSerializer(hits, many=True).data
    assert len(documented) > 20 and set(documented[0]) == set(SearchHitSerializer().fields)
    assert search(alice_client, q="remote OR zeppelin OR xylophone", limit=100) == documented
