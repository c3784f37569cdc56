"""PostgreSQL or Redis down: API requests answer 503 service_unavailable with Retry-After, in the one shape.

The database outage is real: a Django process whose DATABASE_URL points at a port where nothing
listens (the token lookup is the first thing to fail; it used to be a 500 server_error).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROCESS_WAIT, ROOT, client_for, make_user, use_redis_url

CLOSED_PORT_DB = "postgresql://root@127.0.0.1:1/scriptripper"
TOKEN = "sr_0123abcd_thisTokenIsNeverLookedUpBecauseTheDatabaseIsDown"

REQUESTS = """
import json, django
django.setup()
from django.test import Client
client = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer %s")
out = []
for method, path, body in [("get", "/api/v1/jobs", None), ("get", "/api/v1/account", None),
                           ("post", "/api/v1/jobs/analyze", {"transcript": "A: hi", "provider": "openai",
                                                             "model": "gpt-4o-mini", "tasks": {"s": "Sum up"}})]:
    kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
    response = getattr(client, method)(path, **kwargs)
    out.append({"path": path, "status": response.status_code, "type": response["Content-Type"],
                "retry_after": response.get("Retry-After"), "body": response.content.decode()[:2000]})
print("RESULT " + json.dumps(out))
""" % TOKEN


@pytest.mark.subprocess
@pytest.mark.parametrize("debug", ["true", "false"])
def test_database_down_is_503_with_retry_after(debug):
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "scriptripper.settings", "DATABASE_URL": CLOSED_PORT_DB,
           "DB_CONNECT_TIMEOUT": "1", "DEBUG": debug, "REDIS_URL": "redis://127.0.0.1:1/0",
           "OPENAI_API_KEY": "test"}
    result = subprocess.run([sys.executable, "-c", REQUESTS], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=PROCESS_WAIT)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, result.stdout[-2000:] + result.stderr[-3000:]
    for answer in json.loads(line.removeprefix("RESULT ")):
        assert answer["status"] == 503, answer
        assert answer["type"].startswith("application/json"), answer
        assert answer["retry_after"] and int(answer["retry_after"]) > 0, answer
        error = json.loads(answer["body"])["error"]
        assert error["code"] == "service_unavailable" and "database" in error["message"].lower(), answer
        assert "127.0.0.1" not in answer["body"] and "port" not in answer["body"]  # no driver details leak


@pytest.mark.django_db
def test_redis_down_is_503_with_retry_after(settings):
    staff = client_for(make_user("olga", plan="pro", is_staff=True))
    use_redis_url(settings, "redis://127.0.0.1:1/0")
    response = staff.get("/api/v1/queues")
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) == settings.OUTAGE_RETRY_AFTER_SECONDS
    assert response.json()["error"]["code"] == "service_unavailable"


@pytest.mark.django_db
def test_a_redis_connection_error_escaping_a_view_is_503(alice_client, monkeypatch, settings):
    import redis

    from jobs import api

    def unreachable(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(api, "jobs_summaries", unreachable)
    response = alice_client.get("/api/v1/jobs")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    assert response.json() == {"error": {"code": "service_unavailable",
                                         "message": "Redis is unavailable; try again shortly."}}

