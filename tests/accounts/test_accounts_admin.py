"""Users and API tokens in the Django admin: plan and spend shown; a token's key shown once; digests never."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken, User
from accounts.services import api_token_create, spend_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-admin-password-1"))
    return client


def api_status(secret: str) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api.get("/api/v1/jobs").status_code


def test_token_created_in_admin_is_shown_once_and_works(admin_client, alice):
    response = admin_client.post("/admin/accounts/apitoken/add/", {"user": alice.pk, "name": "laptop"})
    assert response.status_code == 200  # the page with the key, not a redirect that would carry it elsewhere
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    secret = re.search(r'id="api-token-secret"[^>]*>(sr_[^<]+)<', page).group(1)
    token = ApiToken.objects.get(user=alice, name="laptop")
    assert secret.startswith(f"sr_{token.prefix}_")
    assert token.digest not in page
    assert api_status(secret) == 200

    # Never again: not on the token's page, not in the list, and the digest nowhere.
    for url in (f"/admin/accounts/apitoken/{token.pk}/change/", "/admin/accounts/apitoken/",
                f"/admin/accounts/user/{alice.pk}/change/"):
        later = admin_client.get(url).content.decode()
        assert secret not in later and token.digest not in later, url
        assert token.prefix in later, url


def test_revoke_action(admin_client, alice):
    created = api_token_create(user=alice, name="old")
    assert api_status(created.secret) == 200
    response = admin_client.post("/admin/accounts/apitoken/", {
        "action": "revoke_tokens", "_selected_action": [created.token.pk]}, follow=True)
    assert "Revoked 1 token(s)." in response.content.decode()
    created.token.refresh_from_db()
    assert created.token.revoked_at is not None
    assert api_status(created.secret) == 401


def test_token_change_form_edits_only_the_name(admin_client, alice):
    created = api_token_create(user=alice, name="old name")
    page = admin_client.get(f"/admin/accounts/apitoken/{created.token.pk}/change/").content.decode()
    assert 'name="name"' in page and 'name="digest"' not in page and 'name="prefix"' not in page
    admin_client.post(f"/admin/accounts/apitoken/{created.token.pk}/change/", {"name": "new name", "digest": "x" * 64})
    created.token.refresh_from_db()
    assert created.token.name == "new name" and created.token.digest != "x" * 64
    assert api_status(created.secret) == 200


def test_users_show_plan_budget_and_spend_never_the_webhook_secret(admin_client, alice, bob):
    User.objects.filter(pk=bob.pk).update(plan="pro", monthly_budget=Decimal("42.00"))
    spend_record(user_id=alice.pk, reference="task:1:attempt:1", amount=Decimal("1.23456789"))
    page = admin_client.get("/admin/accounts/user/").content.decode()
    assert "Pro" in page and "Free" in page
    assert "$1.23" in page and "$42.00" in page
    detail = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert 'name="plan"' in detail and 'name="monthly_budget"' in detail
    assert "spent $1.23456789 of $5.00" in detail
    alice.refresh_from_db()
    assert alice.webhook_secret not in detail and alice.webhook_secret not in page


def test_spend_is_the_exact_figure_the_charts_and_the_jobs_show(admin_client, alice):
    # Not rounded to the cent: a sub-cent month read "$0.01" here and "$0.00838753" on the charts page.
    spend_record(user_id=alice.pk, reference="task:2:attempt:1", amount=Decimal("0.00838753"))
    page = admin_client.get("/admin/accounts/user/").content.decode()
    assert "$0.00838753" in page and "$0.01" not in page
    detail = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert "spent $0.00838753 of $5.00, $4.99161247 left" in detail
