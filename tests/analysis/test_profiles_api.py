"""Analysis profiles: alice's are hers, built-ins are everyone's and staff-only to change."""

from __future__ import annotations

import pytest

from analysis.models import AnalysisProfile
from tests.conftest import assert_error, client_for, make_user

# The built-in profiles as the migrations leave them, whatever a transactional test on this worker flushed.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("builtin_profiles")]

BUILTINS = {"meeting-notes", "video-summary", "podcast-interview", "lecture"}

PROFILE = {
    "name": "weekly-standup",
    "description": "Our Monday standup",
    "system_prompt": "You write terse standup notes.",
    "tasks": [{"name": "blockers", "prompt": "List the blockers"}, {"name": "summary", "prompt": "Summarize"}],
    "default_provider": "openai",
    "default_model": "gpt-4o-mini",
}


def test_builtins_exist_with_the_promised_tasks(alice_client):
    data = alice_client.get("/api/v1/profiles").json()
    by_name = {p["name"]: p for p in data["results"] if p["builtin"]}
    assert set(by_name) == BUILTINS
    tasks = {name: [t["name"] for t in p["tasks"]] for name, p in by_name.items()}
    assert tasks["meeting-notes"] == ["summary", "key_points", "decisions", "action_items", "open_questions"]
    assert tasks["video-summary"] == ["summary", "chapters", "key_takeaways"]
    assert tasks["podcast-interview"] == ["summary", "guests", "topics", "notable_quotes"]
    assert tasks["lecture"] == ["outline", "key_concepts", "review_questions"]
    action_items = next(t["prompt"] for t in by_name["meeting-notes"]["tasks"] if t["name"] == "action_items")
    assert "Owner" in action_items and "Due date" in action_items
    chapters = next(t["prompt"] for t in by_name["video-summary"]["tasks"] if t["name"] == "chapters")
    assert "[hh:mm:ss]" in chapters
    assert all(p["system_prompt"] for p in by_name.values())


def test_alice_creates_lists_reads_updates_and_deletes_her_profile(alice_client):
    response = alice_client.post("/api/v1/profiles", PROFILE, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["builtin"] is False and created["tasks"] == PROFILE["tasks"]
    pid = created["id"]

    names = [p["name"] for p in alice_client.get("/api/v1/profiles/").json()["results"]]
    assert "weekly-standup" in names and BUILTINS <= set(names)
    assert alice_client.get(f"/api/v1/profiles/{pid}").json()["name"] == "weekly-standup"

    patched = alice_client.patch(f"/api/v1/profiles/{pid}", {"description": "Mondays, 9:00"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "Mondays, 9:00"
    assert patched.json()["tasks"] == PROFILE["tasks"]  # PATCH leaves the rest alone

    replaced = alice_client.put(f"/api/v1/profiles/{pid}/", {"name": "standup", "tasks": {"only": "One task"}},
                                format="json")
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["name"] == "standup" and replaced.json()["tasks"] == [{"name": "only", "prompt": "One task"}]

    assert alice_client.delete(f"/api/v1/profiles/{pid}").status_code == 204
    assert_error(alice_client.get(f"/api/v1/profiles/{pid}"), 404, "not_found")


def test_bob_cannot_see_or_touch_alices_profile(alice_client, bob_client):
    pid = alice_client.post("/api/v1/profiles", PROFILE, format="json").json()["id"]
    assert "weekly-standup" not in [p["name"] for p in bob_client.get("/api/v1/profiles").json()["results"]]
    assert_error(bob_client.get(f"/api/v1/profiles/{pid}"), 404, "not_found")
    assert_error(bob_client.patch(f"/api/v1/profiles/{pid}", {"description": "mine"}, format="json"), 404, "not_found")
    assert_error(bob_client.delete(f"/api/v1/profiles/{pid}"), 404, "not_found")
    assert AnalysisProfile.objects.get(id=pid).description == PROFILE["description"]
    # Bob may use the same name for a profile of his own.
    assert bob_client.post("/api/v1/profiles", PROFILE, format="json").status_code == 201


def test_builtins_are_staff_only_to_change(alice_client, db):
    builtin = AnalysisProfile.objects.get(owner=None, name="lecture")
    assert_error(alice_client.patch(f"/api/v1/profiles/{builtin.id}", {"description": "x"}, format="json"),
                 403, "permission_denied")
    assert_error(alice_client.delete(f"/api/v1/profiles/{builtin.id}"), 403, "permission_denied")
    builtin.refresh_from_db()
    assert builtin.description != "x"

    staff = client_for(make_user("carol", is_staff=True))
    response = staff.patch(f"/api/v1/profiles/{builtin.id}", {"description": "Edited by staff"}, format="json")
    assert response.status_code == 200 and response.json()["builtin"] is True
    assert AnalysisProfile.objects.get(id=builtin.id).description == "Edited by staff"


@pytest.mark.parametrize("body,field", [
    ({**PROFILE, "tasks": []}, "tasks"),
    ({**PROFILE, "tasks": [{"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"}]}, "tasks"),
    ({**PROFILE, "tasks": [{"name": "a"}]}, "tasks"),
    ({**PROFILE, "name": "123"}, "name"),
    ({**PROFILE, "name": ""}, "name"),
    ({**PROFILE, "default_provider": "mistral"}, "default_provider"),
    ({**PROFILE, "default_model": "gemini-2.5-flash"}, "default_model"),  # not an OpenAI model
    ({k: v for k, v in PROFILE.items() if k != "tasks"}, "tasks"),
])
def test_bad_profiles_are_400_naming_the_field(alice_client, body, field):
    assert_error(alice_client.post("/api/v1/profiles", body, format="json"), 400, "validation_error", field)


def test_duplicate_name_is_400(alice_client):
    assert alice_client.post("/api/v1/profiles", PROFILE, format="json").status_code == 201
    assert_error(alice_client.post("/api/v1/profiles", PROFILE, format="json"), 400, "validation_error", "name")


def test_profiles_need_a_token(client):
    assert_error(client.get("/api/v1/profiles"), 401, "not_authenticated")


def test_admin_lists_and_edits_profiles_for_staff(client, db):
    from accounts.models import User

    User.objects.create_superuser("root-admin", "root@example.com", "pw-for-tests-only")
    client.login(username="root-admin", password="pw-for-tests-only")
    page = client.get("/admin/analysis/analysisprofile/")
    assert page.status_code == 200 and b"meeting-notes" in page.content
    builtin = AnalysisProfile.objects.get(owner=None, name="video-summary")
    assert client.get(f"/admin/analysis/analysisprofile/{builtin.id}/change/").status_code == 200


def test_system_check_warns_about_a_profile_default_provider_without_key(alice_client, settings):
    from analysis.checks import check_profile_providers

    alice_client.post("/api/v1/profiles", PROFILE, format="json")  # default provider: openai
    assert check_profile_providers(None) == []
    settings.OPENAI_API_KEY = ""
    warnings = check_profile_providers(None)
    assert [w.id for w in warnings] == ["scriptripper.W101"] and "OPENAI_API_KEY" in warnings[0].msg
