"""GET /api/v1/models: every usable model, filterable by provider, searchable by name, from memory."""

from __future__ import annotations

import pytest

from analysis.engine.catalogue import list_models, utc_today

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/models/"])
def test_lists_every_provider_with_prices_as_numbers(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["prices_version"] == "0.2.3"
    models = {(m["provider"], m["name"]): m for m in body["models"]}
    for required in ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-3.5-flash", "gpt-4o",
                     "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "gpt-5.6-sol",
                     "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-6", "claude-opus-4-8"]:
        assert any(name == required for _, name in models), required
    pro = models[("gemini", "gemini-2.5-pro")]
    assert pro["input"] == 1.25 and pro["input_above"] == 2.5 and pro["tier_threshold"] == 200_000
    assert pro["tiers"] == [{"above": 200_000, "input": 2.5, "cached_input": 0.25, "cache_write": 2.5,
                             "output": 15.0, "reasoning": 15.0}]
    assert pro["context_window"] == 1_048_576 and pro["batch"] == {"input": 0.625, "output": 5.0}
    haiku = models[("anthropic", "claude-haiku-4-5")]
    assert haiku["cache_write"] == 1.25 and haiku["cached_input"] == 0.1 and haiku["cache_write_1h"] == 2.0
    gpt5 = models[("openai", "gpt-5")]
    assert gpt5["reasoning_model"] is True and (gpt5["context_window"], gpt5["total_context"]) == (272_000, 400_000)
    assert gpt5["flex"] == {"input": 0.625, "cached_input": 0.0625, "output": 5.0}
    assert models[("anthropic", "claude-opus-4-5")]["retires_on"] == "2027-01-22"
    assert all(m["configured"] is True for m in models.values())  # the test settings give every provider a key
    # Every usable catalogue model, and only those: claude-sonnet-4-5 retired on 2026-11-30.
    served = [i for i in list_models() if not i.retired(utc_today())]
    assert len(models) == len(served)


def test_retired_models_only_on_request(alice_client):
    names = {m["name"] for m in alice_client.get("/api/v1/models?provider=anthropic").json()["models"]}
    everything = alice_client.get("/api/v1/models?provider=anthropic&include_retired=true").json()["models"]
    assert "claude-sonnet-4-5" not in names
    assert {"claude-sonnet-4-5": "2026-11-30"}.items() <= {m["name"]: m["retires_on"] for m in everything}.items()


def test_filters_by_provider(alice_client):
    models = alice_client.get("/api/v1/models?provider=anthropic").json()["models"]
    assert models and {m["provider"] for m in models} == {"anthropic"}


def test_search_by_name_or_alias(alice_client):
    found = alice_client.get("/api/v1/models?search=FLASH-LITE").json()["models"]
    assert found and all("flash-lite" in m["name"] for m in found)
    by_alias = alice_client.get("/api/v1/models?search=gpt-4o-2024-11-20").json()["models"]
    assert [m["name"] for m in by_alias] == ["gpt-4o"]
    assert alice_client.get("/api/v1/models?provider=openai&search=claude").json()["models"] == []


def test_unknown_provider_is_400_in_the_error_shape(alice_client):
    response = alice_client.get("/api/v1/models?provider=mistral")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "gemini" in error["fields"]["provider"][0]


def test_needs_a_token(client):
    response = client.get("/api/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"


def test_documented_with_its_output_serializer(alice_client):
    schema = alice_client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/models/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"provider", "search", "include_retired"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ModelListOutput")
    fields = schema["components"]["schemas"]["ModelOutput"]["properties"]
    assert {"tiers", "retires_on", "price_unknown", "context_window", "flex"} <= set(fields)
