"""Staff users can use the admin: the "operators" group (a data migration) holds the permissions they need."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from accounts.models import User
from accounts.services import OPERATORS_GROUP, user_upsert
from jobs.models import Job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("operators_group")]


def createtoken(*args: str) -> list[str]:
    out = StringIO()
    call_command("createtoken", *args, stdout=out)
    return out.getvalue().splitlines()


def admin_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_migration_created_the_operators_group_with_permissions():
    group = Group.objects.get(name=OPERATORS_GROUP)
    codenames = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert {("jobs", "view_job"), ("jobs", "change_job"), ("accounts", "view_user"),
            ("accounts", "add_apitoken")} <= codenames
    assert ("accounts", "change_user") not in codenames  # an operator cannot make themselves superuser


def test_a_staff_user_is_an_operator_and_can_use_the_admin(alice):
    olga, _ = user_upsert(username="olga", plan="pro", is_staff=True)
    assert olga.groups.filter(name=OPERATORS_GROUP).exists()
    job = Job.objects.create(owner=alice, provider="openai", model="gpt-4o-mini", transcript="A: hi")
    client = admin_client(olga)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "have permission to view or edit anything" not in index.content.decode()
    for url in ("/admin/jobs/job/", f"/admin/jobs/job/{job.id}/change/", "/admin/accounts/user/",
                "/admin/accounts/apitoken/", "/admin/analysis/analysisprofile/"):
        assert client.get(url).status_code == 200, url
    response = client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [str(job.id)]},
                           follow=True)
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELED
    # Users are visible, not editable.
    assert client.post(f"/admin/accounts/user/{alice.pk}/change/", {"is_superuser": "on"}).status_code == 403


def test_staff_flag_off_leaves_the_group():
    olga, _ = user_upsert(username="olga", is_staff=True)
    user_upsert(username="olga", is_staff=False)
    assert not olga.groups.filter(name=OPERATORS_GROUP).exists()


def test_ticking_staff_status_in_the_admin_makes_an_operator(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-root-only")
    bob, _ = user_upsert(username="bob")
    client = admin_client(root)
    response = client.post(f"/admin/accounts/user/{bob.pk}/change/", {
        "username": "bob", "is_staff": "on", "is_active": "on", "plan": "free",
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "api_tokens-TOTAL_FORMS": "0", "api_tokens-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:3000]
    bob.refresh_from_db()
    assert bob.is_staff and bob.groups.filter(name=OPERATORS_GROUP).exists()


def test_login_password_is_generated_once_and_logs_in():
    lines = createtoken("demo", "--plan", "pro", "--staff", "--login-password")
    login = next(line for line in lines if line.startswith("Admin login:"))
    password = login.split(" / ", 1)[1].split()[0]
    assert lines[-1].startswith("sr_")  # the token stays the last line (scripts/run.sh reads it)
    assert Client().login(username="demo", password=password)
    again = createtoken("demo", "--plan", "pro", "--staff", "--login-password")
    assert password not in "\n".join(again)  # never shown twice, never reset behind the owner's back
    assert Client().login(username="demo", password=password)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": "demo", "password": password})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert "have permission" not in client.get("/admin/").content.decode()
