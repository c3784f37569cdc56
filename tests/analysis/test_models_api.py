"""GET /api/v1/models: the catalogue, filterable by provider."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/models/"])
def test_lists_every_provider_with_prices_as_numbers(alice_client, path):
    response = alice_client.get(path)
    assert response.status_code == 200
    models = {(m["provider"], m["name"]): m for m in response.json()["models"]}
    for required in ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gpt-4o", "gpt-4o-mini",
                     "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "claude-sonnet-4-5", "claude-haiku-4-5",
                     "claude-opus-4-5"]:
        assert any(name == required for _, name in models), required
    pro = models[("gemini", "gemini-2.5-pro")]
    assert pro["input"] == 1.25 and pro["input_above"] == 2.5 and pro["tier_threshold"] == 200_000
    sonnet = models[("anthropic", "claude-sonnet-4-5")]
    assert sonnet["cache_write"] == 3.75 and sonnet["cached_input"] == 0.3 and sonnet["price_date"]
    assert models[("openai", "gpt-5")]["reasoning_model"] is True
    assert all(m["configured"] is True for m in models.values())  # the test settings give every provider a key


def test_filters_by_provider(alice_client):
    models = alice_client.get("/api/v1/models?provider=anthropic").json()["models"]
    assert models and {m["provider"] for m in models} == {"anthropic"}


def test_unknown_provider_is_400_in_the_error_shape(alice_client):
    response = alice_client.get("/api/v1/models?provider=mistral")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "gemini" in error["fields"]["provider"][0]


def test_needs_a_token(client):
    assert client.get("/api/v1/models").status_code == 401
