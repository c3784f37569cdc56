"""Provider keys and bearer tokens never appear in logs, error messages, admin pages or API responses.

Logs are captured at DEBUG for every logger (the SDKs and HTTP clients included)
across a submission, a successful run, a run that fails with a 401 from the
provider, and a request with a wrong token.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import api_token_create
from analysis.clients import reset_provider_clients
from emulator.server import faults
from tests.conftest import transcript, work_burst

pytestmark = pytest.mark.django_db(transaction=True)

PROVIDER_KEYS = {
    "OPENAI_API_KEY": "sk-proj-LEAKCHECKopenai0123456789abcdefABCDEF",
    "ANTHROPIC_API_KEY": "sk-ant-api03-LEAKCHECKanthropic0123456789abcdef",
    "GEMINI_API_KEY": "AIzaLEAKCHECKgemini0123456789abcdefABCD",
}
LOGGERS = ("", "django", "django.request", "httpx", "httpx2", "httpcore", "openai", "anthropic", "google_genai",
           "urllib3", "rq", "rq.worker", "jobs", "analysis", "accounts", "scriptripper")


def fragments(secret: str) -> list[str]:
    # The whole secret, and its secret part alone (a masked echo may keep the brand prefix, never the middle).
    return [secret, secret[len(secret) // 3: 2 * len(secret) // 3]]


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        for fragment in fragments(secret):
            assert fragment not in text, f"{where} contains a secret ({fragment[:6]}…)"


def everything_logged(caplog) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(vars(record)))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture
def debug_logs(caplog):
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.parametrize("provider, model, key_setting", [
    ("openai", "gpt-4o-mini", "OPENAI_API_KEY"),
    ("anthropic", "claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ("gemini", "gemini-2.5-flash", "GEMINI_API_KEY"),
])
def test_secrets_stay_out_of_logs_errors_responses_and_admin(provider, model, key_setting, alice, settings,
                                                             emulator, debug_logs, django_user_model):
    for name, value in PROVIDER_KEYS.items():
        setattr(settings, name, value)
    reset_provider_clients()
    token = api_token_create(user=alice).secret
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    secrets = [*PROVIDER_KEYS.values(), token]
    responses = []

    def submit():
        # reuse=False: the second job must call the provider, not reuse the first one's answer.
        response = client.post("/api/v1/jobs/analyze", {
            "transcript": transcript("TS3010a.txt"), "provider": provider, "model": model,
            "tasks": {"summary": "Provide a brief summary"}, "reuse": False}, format="json")
        responses.append(response)
        assert response.status_code == 202, response.content
        return response.json()["job_id"]

    ok_job = submit()
    work_burst()
    # The provider refuses the key: its error (realistic body, as each provider words it) reaches the job.
    emulator.add_faults(faults.status(401, provider, times=20))
    failed_job = submit()
    work_burst()
    for job_id, status in ((ok_job, "finished"), (failed_job, "failed")):
        response = client.get(f"/api/v1/jobs/{job_id}")
        responses.append(response)
        assert response.json()["status"] == status, response.content
    assert responses[-1].json()["error"]  # the failure says why...

    # A wrong token is refused without being written anywhere.
    wrong = APIClient()
    wrong_secret = token[:-6] + "ZZZZZZ"
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong_secret}")
    responses.append(wrong.get(f"/api/v1/jobs/{ok_job}"))
    assert responses[-1].status_code == 401
    secrets.append(wrong_secret)
    for path in ("/api/v1/account", "/api/v1/tokens", "/api/v1/jobs"):
        responses.append(client.get(path))

    for response in responses:
        assert_clean(response.content.decode(), secrets, f"the response to {response.wsgi_request.path}")
    assert_clean(everything_logged(debug_logs), secrets, "the captured logs")
    assert len(debug_logs.records) > 20  # the capture really ran at debug

    # ...and the admin pages show neither the keys nor the tokens.
    staff = django_user_model.objects.create_user("root", password="pw-for-admin-test", is_staff=True,
                                                  is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    token_row = ApiToken.objects.filter(user=alice).first()
    for url in (f"/admin/jobs/job/{failed_job}/change/", f"/admin/jobs/job/{ok_job}/change/", "/admin/jobs/job/",
                f"/admin/accounts/user/{alice.pk}/change/", "/admin/accounts/apitoken/",
                f"/admin/accounts/apitoken/{token_row.pk}/change/"):
        page = browser.get(url)
        assert page.status_code == 200, url
        assert_clean(page.content.decode(), secrets, url)
