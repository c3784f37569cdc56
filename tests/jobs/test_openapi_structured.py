"""The OpenAPI schema documents task objects, JSON-valued results and speaker statistics."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_the_schema_documents_the_new_shapes(alice_client):
    schema = alice_client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    tasks = components["Analyze"]["properties"]["tasks"] if "Analyze" in components else None
    text = str(schema)
    assert "cite" in text and "Draft 2020-12" in text
    assert "SpeakerStats" in components and "talk_time_s" in components["SpeakerStats"]["properties"]
    assert "language" in text
    if tasks is not None:
        assert tasks["additionalProperties"]["oneOf"][0] == {"type": "string"}
