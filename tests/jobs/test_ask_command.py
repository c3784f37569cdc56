"""`manage.py ask "QUESTION" --user U ...`: the terminal client of POST /api/v1/ask, through its validation and
services; with --wait, the answer with its citations by meeting and turn, as Markdown or the API's document."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from emulator.fault_specs import faults
from jobs.models import Job
from tests.conftest import PROCESS_WAIT, ROOT, wait_enqueued_job, work_burst, worker_env
from tests.jobs.asking import store


def run(*args: str) -> str:
    out = StringIO()
    call_command("ask", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def meetings(alice):
    return [store(alice, "TS3010a", 0, tags=("design",)), store(alice, "ES2009b", 3, tags=("design",)),
            store(alice, "education_0", 10, tags=("policy",))]


@pytest.mark.django_db
def test_the_options_make_the_scope_and_the_job_id_is_printed(alice, meetings):
    out = run("Who owns the design?", "--user", "alice", "--tag", "design", "--since", "2026-11-01",
              "--until", "2026-11-02", "--provider", "openai", "--model", "gpt-4o-mini")
    job = Job.objects.get(id=out.strip())
    assert job.kind == "ask" and job.owner == alice
    # --until takes its whole day: the meeting of the 2nd, 10:00 UTC, is in; the one of the 5th is not.
    assert job.scope == {"given": {"tag": "design", "occurred_after": "2026-11-01T00:00:00+00:00",
                                   "occurred_before": "2026-11-03T00:00:00+00:00"},
                         "transcripts": [str(meetings[0].id)]}
    named = run("?", "--user", "alice", "--transcript", str(meetings[2].id), "--transcript", str(meetings[0].id),
                "--provider", "openai", "--model", "gpt-4o-mini")
    scope = Job.objects.get(id=named.strip()).scope
    assert scope["given"]["transcripts"] == [str(meetings[2].id), str(meetings[0].id)]  # as sent
    assert scope["transcripts"] == [str(meetings[0].id), str(meetings[2].id)]  # by date, as they are read


@pytest.mark.django_db
@pytest.mark.parametrize("args,message", [
    (["--user", "nobody"], "No active user 'nobody'"),
    (["--user", "alice", "--tag", "design", "--transcript", "7f0d2cf6-3a43-4a5e-9a7e-6c0d5b0f1e21"], "not both"),
    (["--user", "alice", "--tag", "nothing-tagged-so"], "No transcript of yours matches"),
    (["--user", "alice", "--transcript", "7f0d2cf6-3a43-4a5e-9a7e-6c0d5b0f1e21"], "No such transcript"),
    (["--user", "alice", "--since", "first of November"], "is not a date"),
])
def test_bad_input_is_one_clear_error(alice, meetings, args, message):
    with pytest.raises(CommandError) as raised:
        run("Who owns the design?", *args, "--provider", "openai", "--model", "gpt-4o-mini")
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not Job.objects.exists()


def start_cli(emulator, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "ask", "Which buttons did they choose?", "--user", "alice",
         "--tag", "design", "--provider", "openai", "--model", "gpt-4o-mini", "--wait", "--interval", "0.1", *extra],
        cwd=ROOT, env=worker_env(emulator), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_prints_the_answer_with_its_citations_by_meeting_and_the_meetings_read(alice, meetings, emulator):
    second = meetings[1]
    turn = next(t for t in second.turns.order_by("number") if len(t.text.split()) > 6)
    quote = " ".join(turn.text.split()[:5])
    emulator.add_faults(faults.reply(json.dumps({"text": "They chose **rubber** buttons.", "references": [
        {"claim": "Rubber buttons", "citations": [{"transcript": "M2", "turn": turn.number, "quote": quote},
                                                  {"transcript": "M1", "turn": 1, "quote": "words nobody said here"}]}]}),
        "openai"))
    cli = start_cli(emulator)
    job = wait_enqueued_job()
    work_burst()
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 0, err
    assert out.startswith("# Ask: Which buttons did they choose?\n")
    assert f"`{job.id}` (finished)" in out and "openai / gpt-4o-mini" in out
    assert "## answer\n\nThey chose **rubber** buttons." in out
    assert f'- Rubber buttons ([ES2009b (2026-11-05) T{turn.number}] "{quote}")' in out
    assert "_Citations: 2 checked against the meetings, 1 rejected._" in out
    assert "## Meetings consulted" in out and "turns read: every meeting in scope, whole." in out
    assert f"- TS3010a (2026-11-02), `{meetings[0].id}`: {meetings[0].turn_count} turns (T1–T168)" in out


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_json_prints_the_api_document(alice, meetings, emulator, alice_client):
    cli = start_cli(emulator, "--json")
    job = wait_enqueued_job()
    work_burst()
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 0, err
    document = json.loads(out)
    assert document == alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert document["result"]["results"]["answer"] and document["result"]["metadata"]["read"] == "whole"
