"""The OpenAPI schema documents task objects, JSON-valued results and speaker statistics."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_the_schema_documents_the_new_shapes(alice_client):
    components = alice_client.get("/api/schema/?format=json").json()["components"]["schemas"]
    analyze = components["AnalyzeRequest"]["properties"]
    string, task = analyze["tasks"]["additionalProperties"]["oneOf"]
    assert string == {"type": "string"} and set(task["properties"]) == {"prompt", "schema", "cite"}
    assert "Draft 2020-12" in task["properties"]["schema"]["description"]
    assert "language" in analyze and "structured" in analyze
    batch_item = components["BatchRequest"]["properties"]["tasks"]["items"]["properties"]
    assert {"schema", "cite"} <= set(batch_item)
    assert "schema" in components["ProfileInputRequest"]["properties"]["tasks"]["items"]["properties"]
    assert "language" in components["ProfileOutput"]["properties"]
    assert set(components["SpeakerStats"]["properties"]) == {
        "speaker", "turns", "words", "longest_turn_words", "longest_turn", "talk_time_s"}
    results = components["JobResult"]["properties"]["results"]
    assert "JSON value" in results["description"]
