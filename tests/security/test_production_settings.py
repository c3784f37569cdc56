"""ENVIRONMENT=production: `check --deploy` is clean, missing secrets fail loudly, CORS stays closed."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_manage

pytestmark = pytest.mark.subprocess

PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": "k8Vf3-pQ9xR2mZ7wL4tY6uB1nC5hJ0dG8sA3eF7qW2rT9yU4iO6pK1lM5nB8vX",
    "ALLOWED_HOSTS": "api.example.com",
    "DJANGO_SETTINGS_MODULE": "scriptripper.settings",
    "OPENAI_API_KEY": "sk-production-test",
}


def production_env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")}
    env.update(PRODUCTION)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_check_deploy_reports_nothing():
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_values():
    code = ("from django.conf import settings as s; print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, s.ALLOWED_HOSTS)")
    result = run_manage("shell", "-c", code, env=production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False True True True True ['api.example.com']"


@pytest.mark.parametrize("missing, message", [
    ("SECRET_KEY", "SECRET_KEY must be set"),
    ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set"),
])
def test_missing_secret_key_or_hosts_fails_loudly(missing, message):
    result = run_manage("check", env=production_env(**{missing: None}))
    assert result.returncode != 0
    assert message in result.stderr


def test_no_cors_headers_are_sent(alice_client):
    preflight = alice_client.options("/api/v1/tokens", HTTP_ORIGIN="https://evil.example",
                                     HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    response = alice_client.get("/api/v1/tokens", HTTP_ORIGIN="https://evil.example")
    for answer in (preflight, response):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
