from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

JOB_URL = "/api/v1/jobs/00000000-0000-0000-0000-000000000000"


def test_no_token_is_401_in_the_error_shape():
    response = APIClient().get(JOB_URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer sr_deadbeef_nope", "Bearer nonsense", "Bearer a b"])
def test_wrong_token_is_401(alice, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(JOB_URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_token_is_stored_hashed_and_works(alice):
    created = api_token_create(user=alice)
    row = ApiToken.objects.get(pk=created.token.pk)
    assert created.secret not in (row.digest, row.prefix)
    assert created.secret.startswith(f"sr_{row.prefix}_")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert client.get(JOB_URL).status_code == 404  # authenticated; the job does not exist
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_revoked_token_is_refused(alice):
    created = api_token_create(user=alice)
    api_token_revoke(token=created.token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.secret}")
    assert client.get(JOB_URL).status_code == 401


def test_token_with_right_prefix_but_wrong_secret_is_refused(alice):
    created = api_token_create(user=alice)
    forged = created.secret[:-4] + ("AAAA" if not created.secret.endswith("AAAA") else "BBBB")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get(JOB_URL).status_code == 401


@pytest.mark.parametrize("scheme", ["Token", "Basic", "token"])
def test_another_scheme_is_told_to_use_bearer(alice, scheme):
    # DRF's authtoken habit (`Token <key>`) used to be answered "credentials were not provided".
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {api_token_create(user=alice).secret}")
    response = client.get(JOB_URL)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "authentication_failed"
    assert "Authorization: Bearer <token>" in error["message"]
