"""The classics of hostile input: each gets a 4xx in the one error shape, never a 500.

Unknown fields are ignored (not refused): clients may send fields of a newer API
version, and nothing unknown is stored or echoed.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from jobs.models import Job, Task
from tests.conftest import assert_error, transcript

pytestmark = pytest.mark.django_db

ANALYZE = "/api/v1/jobs/analyze"


def analyze_body(**extra) -> dict:
    return {"transcript": transcript("TS3010a.txt"), "provider": "openai", "model": "gpt-4o-mini",
            "tasks": {"summary": "Provide a brief summary"}, **extra}


def raw_post(client, path: str, data: bytes | str, content_type: str = "application/json"):
    return client.generic("POST", path, data, content_type=content_type)


@pytest.mark.parametrize("path", [ANALYZE, "/api/v1/jobs/batch", "/api/v1/jobs/estimate", "/api/v1/tokens",
                                  "/api/v1/profiles"])
@pytest.mark.parametrize("data", ["not json", "{", '{"transcript": }', "[1, 2", "\ufeff{}x", "NaN", '{"a": Infinity}'])
def test_malformed_json_is_400_parse_error(alice_client, path, data):
    assert_error(raw_post(alice_client, path, data), 400, "parse_error")


@pytest.mark.parametrize("path", [ANALYZE, "/api/v1/tokens", "/api/v1/profiles"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_wrong_content_type_is_415(alice_client, path, content_type):
    assert_error(raw_post(alice_client, path, json.dumps(analyze_body()), content_type), 415,
                 "unsupported_media_type")


@pytest.mark.parametrize("path", [ANALYZE, "/api/v1/jobs/batch", "/api/v1/jobs/estimate"])
def test_json_sent_as_a_form_is_415_saying_to_send_json(alice_client, path):
    # What `curl -d '{...}'` without -H 'Content-Type: application/json' sends: a form whose one key is the JSON.
    error = assert_error(raw_post(alice_client, path, json.dumps(analyze_body()),
                                  "application/x-www-form-urlencoded"), 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"], error
    assert "multipart/form-data" in error["message"], error  # the other way in, for files
    assert not Job.objects.exists()


def test_415_on_a_json_only_endpoint_names_json_only(alice_client):
    error = assert_error(raw_post(alice_client, "/api/v1/tokens", "name=x", "application/x-www-form-urlencoded"),
                         415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"] and "multipart" not in error["message"], error


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_deeply_nested_json_is_400_not_500(alice_client, depth):
    nested = "[" * depth + "]" * depth
    assert_error(raw_post(alice_client, ANALYZE, f'{{"transcript": "hi", "tasks": {nested}}}'), 400, "parse_error")
    nested_objects = '{"a":' * depth + "1" + "}" * depth
    assert_error(raw_post(alice_client, "/api/v1/tokens", f'{{"name": "x", "extra": {nested_objects}}}'), 400)


def test_deeply_nested_json_in_a_multipart_field_is_400(alice_client):
    nested = "[" * 100_000 + "]" * 100_000
    response = alice_client.post(ANALYZE, {"transcript": "Alice: hi", "provider": "openai", "model": "gpt-4o-mini",
                                           "tasks": nested}, format="multipart")
    assert_error(response, 400)


@pytest.mark.parametrize("body", [
    analyze_body(transcript="Alice: hello\u0000world"),
    analyze_body(tasks={"sum\u0000mary": "Provide a brief summary"}),
    analyze_body(tasks={"summary": "Provide\u0000 a summary"}),
    analyze_body(system_prompt="be brief\u0000"),
    analyze_body(model="gpt-4o-mini\u0000"),
    analyze_body(unknown_field="ignored but still\u0000 refused"),
    analyze_body(transcript="Alice: \ud800 lone surrogate"),
    analyze_body(tasks={"summary": "a \udfff prompt"}),
])
def test_nul_characters_and_lone_surrogates_are_400(alice_client, body):
    # json.dumps escapes them (\\u0000, \\ud800), as a hostile client would send them.
    assert_error(raw_post(alice_client, ANALYZE, json.dumps(body)), 400)
    assert not Job.objects.exists()


def test_nul_in_token_name_is_400(alice_client):
    assert_error(alice_client.post("/api/v1/tokens", {"name": "a\u0000b"}, format="json"), 400)


@pytest.mark.parametrize("data", [b'{"transcript": "\xff\xfe caf\xe9"}', b"\xc3\x28", b'{"name": "\xed\xa0\x80"}'])
@pytest.mark.parametrize("path", [ANALYZE, "/api/v1/tokens"])
def test_invalid_utf8_is_400(alice_client, path, data):
    assert_error(raw_post(alice_client, path, data), 400, "parse_error")


@pytest.mark.parametrize("field, value", [
    ("max_output_tokens", 10**30),
    ("max_output_tokens", -(10**30)),
    ("max_output_tokens", 1e308),
    ("temperature", 1e308),
    ("temperature", -1e308),
    ("max_cost", 1e308),
    ("max_cost", 10**40),
])
def test_huge_numbers_are_400(alice_client, field, value):
    error = assert_error(alice_client.post(ANALYZE, analyze_body(**{field: value}), format="json"), 400,
                         "validation_error")
    assert field in error["fields"]


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "9" * 5000])
def test_numbers_beyond_float_or_int_limits_are_400(alice_client, literal):
    data = json.dumps(analyze_body())[:-1] + f', "temperature": {literal}}}'
    assert_error(raw_post(alice_client, ANALYZE, data), 400)
    data = f'{{"name": "x", "expires_in_days": {literal}}}'
    assert_error(raw_post(alice_client, "/api/v1/tokens", data), 400)


def test_unknown_fields_are_ignored(alice_client):
    response = alice_client.post(ANALYZE, analyze_body(colour="blue", owner="bob", status="finished",
                                                       nested={"a": [1, 2]}), format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    assert job.status == "queued" and job.owner.username == "alice"
    response = alice_client.post("/api/v1/tokens", {"name": "x", "user": "bob", "prefix": "aaaa"}, format="json")
    assert response.status_code == 201 and response.json()["prefix"] != "aaaa"


SQL = "'; DROP TABLE jobs_job; -- \" OR 1=1 /*"
HTML = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def test_sql_and_html_in_prompts_are_stored_and_returned_verbatim(alice_client, alice):
    tasks = {"sql": f"Explain {SQL}", HTML: f"Describe {HTML}"}
    response = alice_client.post(ANALYZE, analyze_body(tasks=tasks, system_prompt=HTML), format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["job_id"])
    assert job.system_prompt == HTML
    assert {t.name: t.prompt for t in Task.objects.filter(job=job)} == tasks
    assert Job.objects.count() == 1  # the table is still there


def test_html_in_prompts_is_escaped_in_the_admin(alice_client, db, django_user_model):
    response = alice_client.post(ANALYZE, analyze_body(tasks={HTML: f"Describe {HTML}"}, system_prompt=HTML),
                                 format="json")
    job_id = response.json()["job_id"]
    staff = django_user_model.objects.create_user("root", password="pw-for-admin-test", is_staff=True,
                                                  is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    for url in (f"/admin/jobs/job/{job_id}/change/", "/admin/jobs/job/", "/admin/jobs/task/"):
        page = browser.get(url)
        if page.status_code == 404 and url.endswith("/task/"):
            continue  # tasks are shown inline on the job page only
        assert page.status_code == 200, url
        html = page.content.decode()
        assert "<script>alert(" not in html and "<img src=x" not in html, url
    assert "&lt;script&gt;alert(" in browser.get(f"/admin/jobs/job/{job_id}/change/").content.decode()


def test_a_job_deleted_while_it_is_being_canceled_is_404_not_500(alice_client, alice, monkeypatch):
    # Cancel and delete of the same job racing (found by schemathesis with two workers): the
    # row disappears between the view's ownership check and the service's re-read.
    from jobs import services

    job_id = alice_client.post(ANALYZE, analyze_body(), format="json").json()["job_id"]
    forget = services._forget_rq_job

    def delete_meanwhile(job_id):
        forget(job_id)
        Job.objects.filter(id=job_id).delete()

    monkeypatch.setattr(services, "_forget_rq_job", delete_meanwhile)
    assert_error(alice_client.post(f"/api/v1/jobs/{job_id}/cancel"), 404, "not_found")
