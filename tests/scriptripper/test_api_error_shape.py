"""Every response under /api/ is JSON in the one error shape, with DEBUG on as with it off; /api/v1/ is an index."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

UNKNOWN = ["/api/v1/nope", "/api/v1/nope/", "/api/", "/api/v2/jobs", "/api/v1/jobs/not-a-uuid",
           "/api/v1/jobs/12345/cancel", "/api/v1/jobs/00000000-0000-0000-0000-00000000000z",
           "/api/v1/profiles/abc", "/api/v1/tokens/x"]


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def debug(request, settings):
    # pytest-django runs with DEBUG off, which hid Django's HTML debug 404 page of development.
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_is_a_json_404(debug, alice_client, path, method):
    assert_error(getattr(alice_client, method)(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/jobs/not-a-uuid", "/api/v1/jobs/%C2%84/cancel"])
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_an_unknown_api_path_is_a_json_404_without_a_token(debug, path, method):
    # enforce_csrf_checks: like a real client (the test client skips CSRF by default), which met
    # Django's HTML "CSRF verification failed" 403 on a POST to an unknown path.
    client = APIClient(enforce_csrf_checks=True)
    assert_error(getattr(client, method)(path), 404, "not_found")


@pytest.mark.parametrize("method, path", [("delete", "/api/v1/jobs/analyze"), ("put", "/api/v1/jobs"),
                                          ("post", "/api/v1/models"), ("patch", "/api/v1/account")])
def test_a_wrong_method_is_a_json_405(debug, alice_client, method, path):
    assert_error(getattr(alice_client, method)(path), 405, "method_not_allowed")


def test_an_error_escaping_a_view_is_a_json_500_with_debug_on(debug, alice_client, monkeypatch):
    from jobs import api

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "jobs_summaries", boom)
    alice_client.raise_request_exception = False
    assert_error(alice_client.get("/api/v1/jobs"), 500, "server_error")


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1"])
def test_the_api_root_is_a_short_index(debug, path):
    response = APIClient().get(path)  # no token: it is where a newcomer starts
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["schema"].endswith("/api/schema/") and body["docs"].endswith("/api/docs/")
    assert "/api/v1/jobs/analyze" in body["endpoints"] and "/api/v1/jobs/{job_id}" in body["endpoints"]
    # Every listed endpoint is routed (an index that drifts from the URLconf is worse than none):
    # without a token each one asks for it, none is the catch-all 404.
    client = APIClient()
    for endpoint in body["endpoints"]:
        concrete = re.sub(r"\{(job|transcript)_id\}", "00000000-0000-0000-0000-000000000000", endpoint).replace(
            "{profile_id}", "1").replace("{token_id}", "1")
        assert client.get(concrete).json()["error"]["code"] == "not_authenticated", endpoint
