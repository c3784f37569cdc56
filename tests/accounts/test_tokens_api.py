"""Users manage their own API tokens: list (never the secret), create (secret once), revoke."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create

pytestmark = pytest.mark.django_db


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_created_token_secret_is_shown_once_and_works(alice_client, alice):
    response = alice_client.post("/api/v1/tokens", {"name": "laptop", "expires_in_days": 30}, format="json")
    assert response.status_code == 201
    body = response.json()
    secret = body["token"]
    assert secret.startswith(f"sr_{body['prefix']}_")
    assert body["name"] == "laptop" and body["revoked_at"] is None and body["active"] is True
    expires = timezone.datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)

    # The new token authenticates; the list shows it by prefix but never the secret or its digest.
    listed = bearer(secret).get("/api/v1/tokens/")
    assert listed.status_code == 200
    row = next(t for t in listed.json() if t["id"] == body["id"])
    assert set(row) == {"id", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at", "active"}
    digest = ApiToken.objects.get(pk=body["id"]).digest
    assert secret not in listed.content.decode() and digest not in listed.content.decode()
    assert row["last_used_at"] is not None  # recorded by the request that listed it


def test_list_shows_only_own_tokens(alice_client, bob):
    api_token_create(user=bob, name="bobs")
    names = [t["name"] for t in alice_client.get("/api/v1/tokens").json()]
    assert "bobs" not in names


def test_revoke_own_token_stops_it_at_once(alice_client, alice):
    other = api_token_create(user=alice, name="ci")
    assert bearer(other.secret).get("/api/v1/tokens").status_code == 200
    response = alice_client.delete(f"/api/v1/tokens/{other.token.id}")
    assert response.status_code == 204
    assert bearer(other.secret).get("/api/v1/tokens").status_code == 401
    listed = {t["id"]: t for t in alice_client.get("/api/v1/tokens").json()}
    assert listed[other.token.id]["revoked_at"] is not None and listed[other.token.id]["active"] is False
    # Revoking again changes nothing and is not an error.
    assert alice_client.delete(f"/api/v1/tokens/{other.token.id}/").status_code == 204


def test_revoking_someone_elses_token_is_404_and_leaves_it_working(alice_client, bob):
    bobs = api_token_create(user=bob, name="bobs")
    response = alice_client.delete(f"/api/v1/tokens/{bobs.token.id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert bearer(bobs.secret).get("/api/v1/tokens").status_code == 200


def test_expired_token_is_refused(alice):
    created = api_token_create(user=alice, expires_at=timezone.now() + timedelta(seconds=60))
    assert bearer(created.secret).get("/api/v1/tokens").status_code == 200
    ApiToken.objects.filter(pk=created.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(created.secret).get("/api/v1/tokens")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("body, field", [
    ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"expires_in_days": 10**6}, "expires_in_days"),
    ({"expires_in_days": 3, "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "x" * 101}, "name"),
])
def test_bad_token_requests_are_400_with_the_field(alice_client, body, field):
    response = alice_client.post("/api/v1/tokens", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]


def test_token_with_explicit_expiry(alice_client):
    when = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    body = alice_client.post("/api/v1/tokens", {"expires_at": when.isoformat()}, format="json").json()
    assert timezone.datetime.fromisoformat(body["expires_at"]) == when
