"""Every object endpoint, walked with two users, generated from the URL configuration.

Alice creates one object of each kind; Bob calls every method of every /api/v1/
route that takes a path parameter, on Alice's objects, and must get 404 (the
same answer as for an id that does not exist: no oracle), while Alice's objects
stay as they were. A new route with a path parameter this file has no factory
for fails the walk, so a new endpoint cannot be forgotten.

Built-in profiles are visible to everyone and answer 403 to a change by an
ordinary user. Staff-only endpoints (found by their IsAdminUser permission)
answer 403 to ordinary users; the admin and the queue dashboard send them to
the login page.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.permissions import IsAdminUser

from accounts.models import ApiToken
from accounts.services import api_token_create
from analysis.engine.planning import TaskSpec
from analysis.models import AnalysisProfile
from analysis.services import profile_create
from jobs.models import Job
from jobs.services import JobRequest, job_create
from tests.conftest import client_for, make_user
from transcripts.models import Transcript
from transcripts.services import transcript_store

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    name: str
    regex: str
    view: type
    params: tuple[str, ...]

    @property
    def methods(self) -> list[str]:
        return [m for m in METHODS if hasattr(self.view, m)]

    @property
    def staff_only(self) -> bool:
        return any(issubclass(p, IsAdminUser) for p in getattr(self.view, "permission_classes", ()))


def walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        regex = prefix + entry.pattern.regex.pattern.lstrip("^")
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, regex.rstrip("$"))
        elif isinstance(entry, URLPattern):
            yield regex, entry


def api_routes() -> list[Route]:
    routes = []
    for regex, pattern in walk(get_resolver().url_patterns):
        view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
        if not regex.startswith("api/v1/") or view is None:
            continue
        routes.append(Route(name=pattern.name, regex=regex, view=view, params=tuple(re.compile(regex).groupindex)))
    return routes


ROUTES = api_routes()
OBJECT_ROUTES = [r for r in ROUTES if r.params]
STAFF_ROUTES = [r for r in ROUTES if r.staff_only]


# --- Alice's objects, one factory per path parameter -------------------------------------------
def make_job(owner) -> str:
    job = job_create(owner=owner, request=JobRequest(
        provider="openai", model="gpt-4o-mini", transcript="Alice: the launch moves to May.",
        tasks=[TaskSpec(name="summary", prompt="Provide a brief summary")]))
    return str(job.id)


def make_profile(owner) -> str:
    return str(profile_create(owner=owner, name="alice-private", tasks=[
        {"name": "summary", "prompt": "Summarize Alice's secret plans"}]).id)


def make_token(owner) -> str:
    return str(api_token_create(user=owner, name="alice-ci").token.id)


def make_transcript(owner) -> str:
    return str(transcript_store(owner=owner, text="Alice: the secret merger closes in June.", fmt="text",
                                title="alice-board-meeting", tags=["alice-tag"])[0].id)


FACTORIES: dict[str, Callable] = {"job_id": make_job, "profile_id": make_profile, "token_id": make_token,
                                  "transcript_id": make_transcript}
# An id of the right shape that names nothing.
MISSING = {"job_id": str(uuid.UUID(int=0)), "profile_id": "999999999", "token_id": "999999999",
           "transcript_id": str(uuid.UUID(int=0))}
# Query parameters a list needs (search answers 400 without `q`): words Alice's objects hold.
LIST_QUERIES: dict[str, dict] = {"search": {"q": "launch OR merger"}}
# Bodies as a real client would send them, so that a view has no reason to answer 400 before 404.
BODIES: dict[str, dict] = {
    "profile-detail": {"name": "bobs-now", "tasks": [{"name": "x", "prompt": "Say x"}]},
}


def test_every_object_route_has_a_factory():
    assert OBJECT_ROUTES, "no /api/v1/ route with a path parameter found: is the walk broken?"
    missing = sorted({(p, r.regex) for r in OBJECT_ROUTES for p in r.params if p not in FACTORIES})
    assert not missing, f"add a factory to FACTORIES for these path parameters: {missing}"


def call(client, method: str, url: str, route: Route):
    body = BODIES.get(route.name)
    if method in ("post", "put", "patch"):
        return getattr(client, method)(url, json.dumps(body or {}), content_type="application/json")
    return getattr(client, method)(url)


def snapshot(alice) -> dict:
    return {
        "jobs": sorted(Job.objects.filter(owner=alice).values_list("id", "status", "cancel_requested")),
        "profiles": sorted(AnalysisProfile.objects.filter(owner=alice).values_list("id", "name", "tasks")),
        "tokens": sorted(ApiToken.objects.filter(user=alice).values_list("id", "revoked_at")),
        "transcripts": sorted(Transcript.objects.filter(owner=alice).values_list("id", "title", "tags")),
    }


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=lambda r: r.name)
def test_bob_gets_404_for_every_method_on_alices_objects(route, alice, bob_client, alice_client):
    for param in route.params:
        if param not in FACTORIES:
            pytest.fail(f"no factory for path parameter {param!r} of {route.regex}")
    kwargs = {param: FACTORIES[param](alice) for param in route.params}
    url = reverse(route.name, kwargs=kwargs)
    missing_url = reverse(route.name, kwargs={p: MISSING[p] for p in route.params})
    before = snapshot(alice)
    for method in route.methods:
        response = call(bob_client, method, url, route)
        assert response.status_code == 404, (method, url, response.status_code, response.content[:300])
        assert response.json()["error"]["code"] == "not_found"
        # Exactly what an id that exists for nobody gets: the answer says nothing about Alice's object.
        nothing = call(bob_client, method, missing_url, route)
        assert (nothing.status_code, nothing.json()) == (404, response.json()), (method, url)
    assert snapshot(alice) == before, f"{route.name}: Bob changed Alice's objects"
    # The walk can fail: the same URL is Alice's (GET, where there is one, works for her).
    if "get" in route.methods:
        assert alice_client.get(url).status_code == 200


def test_lists_show_bob_nothing_of_alices(alice, bob_client):
    job_id = make_job(alice)
    make_profile(alice)
    token = api_token_create(user=alice, name="alice-ci").token
    transcript_id = make_transcript(alice)
    secrets = [job_id, "alice-private", token.prefix, "alice-ci", "Summarize Alice", transcript_id,
               "alice-board-meeting", "merger", "launch"]
    for route in ROUTES:
        if route.params or "get" not in route.methods or route.staff_only:
            continue
        response = bob_client.get(reverse(route.name), LIST_QUERIES.get(route.name))
        assert response.status_code == 200, (route.name, response.content[:200])
        text = response.content.decode()
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{route.name} shows Bob {leaked}"


def test_builtin_profiles_are_visible_and_403_on_change(bob_client):
    builtin = AnalysisProfile.objects.filter(owner__isnull=True).first()
    assert builtin is not None, "the built-in profiles (data migration) are missing"
    url = reverse("profile-detail", kwargs={"profile_id": builtin.id})
    assert bob_client.get(url).status_code == 200
    for method in ("put", "patch", "delete"):
        response = call(bob_client, method, url, Route("profile-detail", "", object, ("profile_id",)))
        assert response.status_code == 403, (method, response.content[:200])
        assert response.json()["error"]["code"] == "permission_denied"
    assert AnalysisProfile.objects.filter(pk=builtin.pk, name=builtin.name, tasks=builtin.tasks).exists()


def test_staff_only_endpoints_are_found():
    assert {r.name for r in STAFF_ROUTES} >= {"queue-list"}


@pytest.mark.parametrize("route", STAFF_ROUTES, ids=lambda r: r.name)
def test_staff_only_api_endpoints_are_403_for_ordinary_users(route, bob_client, db):
    kwargs = {p: MISSING[p] for p in route.params}
    for method in route.methods:
        response = call(bob_client, method, reverse(route.name, kwargs=kwargs), route)
        assert response.status_code == 403, (route.name, method, response.status_code)
        assert response.json()["error"]["code"] == "permission_denied"
    staff = client_for(make_user("olga", is_staff=True))
    assert staff.get(reverse(route.name, kwargs=kwargs)).status_code == 200


@pytest.mark.parametrize("path", ["/admin/", "/admin/jobs/job/", "/admin/accounts/user/", "/django-rq/"])
def test_admin_and_queue_dashboard_send_ordinary_users_to_the_login_page(path, bob, db):
    browser = Client()
    response = browser.get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # Logged in, but not staff: still the login page, never the content.
    browser.force_login(bob)
    response = browser.get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # A Bearer token does not open the admin either.
    token = api_token_create(user=bob).secret
    response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
