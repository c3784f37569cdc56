"""Tasks with a JSON Schema, per provider over real HTTP: native structured output, validation, one
repair try, map-reduce of structured partials, and citations checked against the transcript."""

from __future__ import annotations

import json

import pytest

from analysis.engine.transcripts import normalize_transcript
from jobs.models import Job
from tests.conftest import transcript, work_burst

# Jobs run by a worker need their rows committed (the API enqueues on commit); the tests of the
# submission's validation alone say @pytest.mark.django_db, which overrides this.
pytestmark = pytest.mark.django_db(transaction=True)

MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash")]

ACTIONS = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "action_items": {"type": "array", "items": {
            "type": "object",
            "properties": {"task": {"type": "string"}, "owner": {"type": "string"},
                           "due": {"type": ["string", "null"]},
                           "citations": {"type": "array", "items": {
                               "type": "object",
                               "properties": {"turn": {"type": "integer"}, "quote": {"type": "string"}},
                               "required": ["turn", "quote"], "additionalProperties": False}}},
            "required": ["task", "owner", "due", "citations"], "additionalProperties": False}},
    },
    "required": ["summary", "action_items"],
    "additionalProperties": False,
}
SIMPLE = {"type": "object", "properties": {"title": {"type": "string"}, "count": {"type": "integer"}},
          "required": ["title", "count"]}


def run_job(client, provider, model, tasks, text=None, **extra) -> dict:
    """Submit a job (on TS3010a unless `text` is given), run it with a worker, and return its document."""
    body = {"transcript": text or transcript("TS3010a.txt"), "provider": provider, "model": model,
            "tasks": tasks, **extra}
    response = client.post("/api/v1/jobs/analyze", body, format="json")
    assert response.status_code == 202, response.content
    work_burst()
    response = client.get(f"/api/v1/jobs/{response.json()['job_id']}")
    assert response.status_code == 200
    return response.json()


def wire_schema(provider: str, body: dict):
    if provider == "openai":
        return body["response_format"]
    if provider == "anthropic":
        return body["output_config"]
    return {"mime": body["generationConfig"]["responseMimeType"],
            "schema": body["generationConfig"]["responseJsonSchema"]}


@pytest.mark.parametrize("provider,model", MODELS)
def test_a_schema_task_returns_a_validated_json_value(alice_client, emulator, provider, model):
    doc = run_job(alice_client, provider, model, {"facts": {"prompt": "Extract facts", "schema": SIMPLE},
                                                  "summary": "Provide a brief summary"})
    assert doc["status"] == "finished", doc
    assert doc["result"]["results"]["facts"] == {"title": "emulated title", "count": 1}
    assert isinstance(doc["result"]["results"]["summary"], str)
    records = sorted(emulator.requests(provider), key=lambda r: r["seq"])
    sent = [wire_schema(provider, r["body"]) for r in records if "Extract facts" in json.dumps(r["body"])]
    if provider == "openai":
        assert sent == [{"type": "json_schema", "json_schema": {"name": "facts", "schema": SIMPLE, "strict": False}}]
    elif provider == "anthropic":
        # Anthropic takes closed objects only: sent closed, validated against the task's own schema.
        assert sent == [{"format": {"type": "json_schema", "schema": {**SIMPLE, "additionalProperties": False}}}]
    else:
        assert sent == [{"mime": "application/json", "schema": SIMPLE}]
    # The plain task went out as before: no schema.
    plain = [r for r in records if "Provide a brief summary" in json.dumps(r["body"])]
    assert all(k not in plain[0]["body"] for k in ("response_format", "output_config"))
    meta = doc["result"]["metadata"]["tasks"]
    assert meta["facts"]["citations_checked"] == 0 and meta["facts"]["citations_rejected"] == 0
    assert "citations_checked" not in meta["summary"]


@pytest.mark.parametrize("provider,model", MODELS)
@pytest.mark.parametrize("fault", ["invalid_json", "schema_break"])
def test_an_invalid_answer_is_repaired_once(alice_client, emulator, provider, model, fault):
    emulator.add_faults({"kind": fault, "provider": provider, "times": 1})
    doc = run_job(alice_client, provider, model, {"facts": {"prompt": "Extract facts", "schema": SIMPLE}})
    assert doc["result"]["results"]["facts"] == {"title": "emulated title", "count": 1}
    assert doc["result"]["metadata"]["tasks"]["facts"]["calls"] == 2
    repair = sorted(emulator.requests(provider), key=lambda r: r["seq"])[-1]
    assert "previous answer above is not acceptable" in json.dumps(repair["body"])


@pytest.mark.parametrize("provider,model", MODELS)
def test_an_answer_still_invalid_after_the_repair_is_a_task_error(alice_client, emulator, provider, model):
    emulator.add_faults({"kind": "schema_break", "provider": provider, "times": 2, "match": "Extract facts"})
    doc = run_job(alice_client, provider, model, {"facts": {"prompt": "Extract facts", "schema": SIMPLE},
                                                  "summary": "Provide a brief summary"})
    error = doc["result"]["errors"]["facts"]
    assert "still invalid after one repair try" in error and "title" in error, error
    assert "summary" in doc["result"]["results"]
    assert doc["result"]["metadata"]["tasks"]["facts"]["calls"] == 2


@pytest.mark.parametrize("provider,model", MODELS)
def test_citations_are_checked_against_the_transcript(alice_client, emulator, provider, model):
    doc = run_job(alice_client, provider, model, {"actions": {"prompt": "List action items", "schema": ACTIONS}})
    value = doc["result"]["results"]["actions"]
    meta = doc["result"]["metadata"]["tasks"]["actions"]
    assert meta["citations_checked"] == 2 and meta["citations_rejected"] == 0
    cited = value["action_items"][0]["citations"][0]
    lines = normalize_transcript(transcript("TS3010a.txt")).split("\n")
    assert cited["quote"].split()[0].lower() in lines[cited["turn"] - 1].lower()
    # The model read numbered turns.
    sent = json.dumps(emulator.requests(provider)[0]["body"], ensure_ascii=False)
    assert "[T1] " in sent and "[T2] " in sent


@pytest.mark.parametrize("provider,model", MODELS)
@pytest.mark.parametrize("fault", ["bad_citation", "misquote"])
def test_wrong_citations_are_removed_and_counted(alice_client, emulator, provider, model, fault):
    emulator.add_faults({"kind": fault, "provider": provider, "times": 1})
    doc = run_job(alice_client, provider, model, {"actions": {"prompt": "List action items", "schema": ACTIONS}})
    meta = doc["result"]["metadata"]["tasks"]["actions"]
    assert meta["citations_checked"] == 2 and meta["citations_rejected"] == 2
    assert all(item["citations"] == [] for item in doc["result"]["results"]["actions"]["action_items"])


def test_a_cited_text_task_returns_text_with_references(alice_client, emulator):
    doc = run_job(alice_client, "openai", "gpt-4o-mini", {"summary": {"prompt": "Summarize", "cite": True}})
    assert doc["result"]["results"]["summary"] == "emulated text"
    meta = doc["result"]["metadata"]["tasks"]["summary"]
    assert meta["citations_checked"] == 2 and meta["citations_rejected"] == 0
    assert [len(ref["citations"]) for ref in meta["references"]] == [1, 1]


@pytest.mark.django_db
@pytest.mark.parametrize("schema,says", [
    ({"type": "string"}, "object at its root"),
    ({"type": "object", "properties": {"a": {"type": "nonsense"}}}, "not a valid JSON Schema"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "local references"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "points at nothing"),
    ("not a schema", "JSON Schema object"),
])
def test_a_bad_schema_is_a_400_on_the_tasks_schema(alice_client, schema, says):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: hi there everyone", "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"facts": {"prompt": "Extract", "schema": schema}}}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert says in error["fields"]["tasks.facts.schema"][0]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_schema_size_and_depth_are_capped(alice_client):
    deep: dict = {"type": "object"}
    node = deep
    for _ in range(8):
        node["properties"] = {"a": {"type": "object"}}
        node = node["properties"]["a"]
    big = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 200} for i in range(100)}}
    for schema, says in ((deep, "levels deep"), (big, "characters")):
        response = alice_client.post("/api/v1/jobs/analyze", {
            "transcript": "Alice: hi there everyone", "provider": "openai", "model": "gpt-4o-mini",
            "tasks": {"facts": {"prompt": "Extract", "schema": schema}}}, format="json")
        assert response.status_code == 400
        assert says in response.json()["error"]["fields"]["tasks.facts.schema"][0]


@pytest.mark.django_db
def test_a_prompt_may_not_forge_the_stored_envelope(alice_client):
    response = alice_client.post("/api/v1/jobs/analyze", {
        "transcript": "Alice: hi there everyone", "provider": "openai", "model": "gpt-4o-mini",
        "tasks": {"facts": 'sr-task/1 {"prompt": "x", "schema": {"type": "string"}}'}}, format="json")
    assert response.status_code == 400


LIMIT = 16_000


@pytest.mark.parametrize("provider,model", MODELS)
def test_a_chunked_transcript_merges_structured_partials_and_checks_citations_across_chunks(
        alice_client, emulator, settings, provider, model):
    settings.MAX_PROMPT_TOKENS = LIMIT
    emulator.configure(max_context=LIMIT)
    text = transcript("Bed015.txt") + "\n" + transcript("covid_2.txt")
    # One map call misquotes: its citations are rejected, the other chunks' kept.
    emulator.add_faults({"kind": "misquote", "provider": provider, "match": "This is part 2 of", "times": 1})
    doc = run_job(alice_client, provider, model, {"actions": {"prompt": "List action items", "schema": ACTIONS}},
                  text=text)
    assert doc["result"]["errors"] == {}, doc["result"]["errors"]
    meta = doc["result"]["metadata"]["tasks"]["actions"]
    chunks = meta["chunks"]
    assert chunks >= 5 and meta["calls"] == chunks + 1
    assert emulator.stats()["rejected_over_context"] == 0
    items = doc["result"]["results"]["actions"]["action_items"]
    # Every chunk's two items survive the reduce; each cited one turn of its own chunk.
    assert len(items) == 2 * chunks
    assert meta["citations_checked"] == 2 * chunks and meta["citations_rejected"] == 2, meta.get("citation_problems")
    cited = sorted({c["turn"] for item in items for c in item["citations"]})
    assert len(cited) == 2 * chunks - 2 and cited[-1] > 1259  # turns of the second meeting too
    lines = normalize_transcript(text).split("\n")
    for item in items:
        for c in item["citations"]:
            assert c["quote"].split()[0].lower() in lines[c["turn"] - 1].lower()
    # The reduce request carried the schema.
    reduce = sorted(emulator.requests(provider), key=lambda r: r["seq"])[-1]
    assert "partial_answer" in json.dumps(reduce["body"]) and wire_schema(provider, reduce["body"])


def test_a_recursive_schema_with_local_refs_works(alice_client):
    tree = {"type": "object", "$defs": {"node": {"type": "object", "properties": {
        "label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["label"]}}, "properties": {"root": {"$ref": "#/$defs/node"}}, "required": ["root"]}
    doc = run_job(alice_client, "anthropic", "claude-haiku-4-5", {"outline": {"prompt": "Outline", "schema": tree}})
    assert doc["result"]["errors"] == {} and doc["result"]["results"]["outline"]["root"]["label"]
