"""DATABASE_POOL_MODE: what the settings do for a PgBouncer in session or transaction mode, and the system
check that warns when the database settings and the pool mode disagree.

Through a live PgBouncer: tests/jobs/test_pgbouncer_restart.py, and the job-path tests rerun with
`pytest --pgbouncer` (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobs.checks import check_database_pool_mode
from tests.conftest import PROCESS_WAIT, ROOT

PROBE = """
import json, os, runpy, sys
from django.core.exceptions import ImproperlyConfigured
out = []
for changes in json.loads(sys.argv[1]):
    os.environ.pop("DATABASE_POOL_MODE", None)
    os.environ.update(changes)
    try:
        db = runpy.run_path("scriptripper/settings.py")["DATABASES"]["default"]
        out.append({"options": db["OPTIONS"], "no_server_side_cursors": db.get("DISABLE_SERVER_SIDE_CURSORS", False)})
    except ImproperlyConfigured as exc:
        out.append({"error": str(exc)})
print(json.dumps(out))
"""


def settings_under(*environments: dict[str, str]) -> list[dict]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scriptripper.settings",
           "DATABASE_URL": "postgresql://app@db.internal:6432/scriptripper"}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(environments)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=PROCESS_WAIT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_each_pool_mode_sets_what_it_needs():
    direct, session, transaction, statement = settings_under(
        {}, {"DATABASE_POOL_MODE": "session"}, {"DATABASE_POOL_MODE": "transaction"},
        {"DATABASE_POOL_MODE": "statement"})
    # PostgreSQL itself: the time zone asked for in the connection request; server-side cursors as Django uses them.
    assert direct["options"]["options"] == "-c TimeZone=UTC" and not direct["no_server_side_cursors"]
    # Behind PgBouncer: no startup option (its [databases] entry sets the time zone).
    assert "options" not in session["options"] and not session["no_server_side_cursors"]
    assert "options" not in transaction["options"] and transaction["no_server_side_cursors"]
    # Nor does psycopg prepare statements: Django passes prepare_threshold=None when OPTIONS sets none.
    assert "prepare_threshold" not in transaction["options"]
    assert "DATABASE_POOL_MODE must be one of none, session, transaction" in statement["error"]


def pool_settings(settings, monkeypatch, mode: str, **database):
    settings.DATABASE_POOL_MODE = mode
    # The entry the check reads, not the connection this process already uses.
    monkeypatch.setitem(settings.DATABASES, "default", {"ENGINE": "django.db.backends.postgresql",
                                                        "NAME": "scriptripper", "OPTIONS": {}, **database})


@pytest.mark.parametrize("mode, database, warning", [
    ("transaction", {"DISABLE_SERVER_SIDE_CURSORS": True}, None),
    ("transaction", {}, "scriptripper.W004"),
    # DATABASE_URL=...?prepare_threshold=5 lands in OPTIONS.
    ("transaction", {"DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {"prepare_threshold": 5}}, "scriptripper.W005"),
    ("session", {"OPTIONS": {"options": "-c statement_timeout=5000"}}, "scriptripper.W006"),
    ("none", {"OPTIONS": {"options": "-c TimeZone=UTC", "prepare_threshold": 5}}, None),
    ("session", {}, None),
])
def test_the_check_warns_when_the_settings_and_the_pool_mode_disagree(settings, monkeypatch, mode, database,
                                                                    warning):
    pool_settings(settings, monkeypatch, mode, **database)
    assert [message.id for message in check_database_pool_mode(None)] == ([warning] if warning else [])


def test_the_project_settings_agree_with_the_pool_mode_they_run_under(settings):
    # Whatever this run's mode (`pytest --pgbouncer` runs in transaction mode), its own settings pass the check.
    assert check_database_pool_mode(None) == []
