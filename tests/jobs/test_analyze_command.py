"""`manage.py analyze FILE --user U ...`: the terminal client, through the API's own validation and services."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analysis.services import profile_create
from jobs.models import Job
from tests.conftest import PROCESS_WAIT, ROOT, run_manage, wait_enqueued_job, wait_for, work_burst, worker_env

# A meeting the project has never seen, in WebVTT, written by the test.
VTT = """WEBVTT

00:00:01.000 --> 00:00:04.000
<v Dana>Morning all, the agenda is the Q3 ferry timetable.

00:00:04.500 --> 00:00:09.000
<v Eli>The 7:15 sailing is always full; I propose adding a 7:45.

00:00:09.500 --> 00:00:12.000
<v Dana>Agreed. Eli drafts the notice by Friday.
"""


@pytest.fixture
def vtt_file(tmp_path):
    path = tmp_path / "ferry-meeting.vtt"
    path.write_text(VTT, encoding="utf-8")
    return path


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("analyze", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_submits_as_the_user_and_prints_the_job_id(alice, vtt_file):
    out, _ = run(str(vtt_file), "--user", "alice", "--task", "summary=Provide a brief summary",
                 "--task", "owners=Who does what?", "--provider", "anthropic", "--model", "claude-haiku-4-5")
    job = Job.objects.get(id=out.strip())
    assert job.owner == alice and job.status == "queued"
    assert (job.provider, job.model) == ("anthropic", "claude-haiku-4-5")
    assert list(job.tasks.values_list("name", "prompt")) == [("summary", "Provide a brief summary"),
                                                             ("owners", "Who does what?")]
    # Parsed like an upload to the API: WebVTT cues become timestamped speaker turns.
    assert job.transcript_format == "vtt"
    assert "[00:00:01] Dana: Morning all" in job.transcript


@pytest.mark.django_db
def test_profile_supplies_tasks_and_model(alice, vtt_file):
    profile_create(owner=alice, name="ferry", tasks=[{"name": "gist", "prompt": "Give the gist"}],
                   default_provider="gemini", default_model="gemini-2.5-flash")
    out, _ = run(str(vtt_file), "--user", "alice", "--profile", "ferry", "--json")
    accepted = json.loads(out)
    assert accepted["status"] == "queued" and accepted["message"] == "Job queued for processing"
    job = Job.objects.get(id=accepted["job_id"])
    assert (job.provider, job.model, job.profile_name) == ("gemini", "gemini-2.5-flash", "ferry")
    assert list(job.tasks.values_list("name", flat=True)) == ["gist"]


@pytest.mark.django_db
@pytest.mark.parametrize("args,message", [
    (["--user", "nobody", "--task", "a=b"], "No active user 'nobody'"),
    (["--user", "alice", "--task", "no-equals-sign"], "--task must be NAME=PROMPT"),
    (["--user", "alice", "--task", "a=b", "--provider", "openai", "--model", "gpt-99"], "model:"),
    (["--user", "alice", "--task", "a=b", "--provider", "nope", "--model", "x"], "provider:"),
    (["--user", "alice", "--profile", "missing", "--provider", "openai", "--model", "gpt-4o-mini"], "profile:"),
    (["--user", "alice", "--task", "a=b", "--task", "a=c", "--provider", "openai", "--model", "gpt-4o-mini"],
     "given twice"),
])
def test_bad_input_is_one_clear_error(alice, vtt_file, args, message):
    with pytest.raises(CommandError) as raised:
        run(str(vtt_file), *args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_missing_and_empty_files(alice, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run(str(tmp_path / "nope.txt"), "--user", "alice", "--task", "a=b", "--provider", "openai",
            "--model", "gpt-4o-mini")
    empty = tmp_path / "empty.srt"
    empty.write_text("")
    with pytest.raises(CommandError, match="file"):
        run(str(empty), "--user", "alice", "--task", "a=b", "--provider", "openai", "--model", "gpt-4o-mini")


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_errors_exit_non_zero_with_one_line_on_stderr(alice, vtt_file, emulator):
    result = run_manage("analyze", str(vtt_file), "--user", "alice", "--task", "a=b", "--provider", "openai",
                        "--model", "gpt-99", env=worker_env(emulator))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: model:"), result.stderr


def start_cli(vtt_file, emulator, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "analyze", str(vtt_file), "--user", "alice",
         "--task", "summary=Provide a brief summary", "--task", "owners=Who does what?",
         "--provider", "openai", "--model", "gpt-4o-mini", "--wait", "--interval", "0.1", *extra],
        cwd=ROOT, env=worker_env(emulator), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(stream) -> str:
    """The first line a command writes to `stream` (a pipe), once it has written it.

    Called while the command has nothing more to write (its job not yet run): communicate() reads the
    pipe itself afterwards, and would miss anything left in this reader's buffer."""
    wait_for(lambda: select.select([stream], [], [], 0)[0], PROCESS_WAIT, "the command's first line", interval=0.05)
    return stream.readline()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_shows_progress_then_markdown_results(alice, vtt_file, emulator):
    cli = start_cli(vtt_file, emulator)
    job = wait_enqueued_job()
    drawn = first_line(cli.stderr)  # it has drawn the queued state
    work_burst()  # a real RQ worker runs the job while the command polls PostgreSQL
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 0, err
    # Progress on stderr (not a terminal here: one line per change), results on stdout.
    progress = (drawn + err).strip().splitlines()
    assert progress[0].startswith("[") and "0/2 tasks" in progress[0] and "queued" in progress[0]
    assert "2/2 tasks" in progress[-1] and "finished" in progress[-1]
    job.refresh_from_db()
    assert f"${job.total_cost:.6f}" in progress[-1] and job.total_cost > 0
    assert "$0.000000" in progress[0]
    assert out.startswith("# ferry-meeting.vtt\n")
    assert f"`{job.id}` (finished)" in out
    assert "openai / gpt-4o-mini" in out
    assert f"- Cost: ${job.total_cost.normalize():f} (" in out  # the bill's digits, never "7.7E-5"
    assert "## summary" in out and "## owners" in out
    # The emulator answers about the instruction it got: each task's own answer is under its heading.
    assert "Provide a brief summary" in out.split("## summary")[1].split("## owners")[0]


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_json_prints_the_api_document(alice, vtt_file, emulator, alice_client):
    cli = start_cli(vtt_file, emulator, "--json")
    job = wait_enqueued_job()
    work_burst()
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 0, err
    document = json.loads(out)
    assert document == alice_client.get(f"/api/v1/jobs/{job.id}").json()
    assert document["status"] == "finished"
    assert isinstance(document["result"]["metadata"]["total_cost"], float)


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_on_a_failed_job_prints_the_errors_and_exits_non_zero(alice, vtt_file, emulator):
    from emulator.server import faults

    emulator.add_faults([faults.status(401, "openai", times=-1)])
    cli = start_cli(vtt_file, emulator)
    wait_enqueued_job()
    work_burst()
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 1
    assert "## Errors" in out and "**summary**: OpenAI rejected the API key" in out
    last = err.strip().splitlines()[-1]
    assert last.startswith("CommandError: Job ") and " failed: All 2 task(s) failed" in last


@pytest.mark.django_db(transaction=True)
def test_reused_answers_are_named_with_their_source_job_at_zero_cost(alice, vtt_file):
    # Result reuse stays on by default; a repeated request costs $0, and the output says why.
    args = (str(vtt_file), "--user", "alice", "--task", "summary=Provide a brief summary", "--task",
            "owners=Who does what?", "--provider", "openai", "--model", "gpt-4o-mini")
    first_id, _ = run(*args)
    work_burst()
    second_id, _ = run(*args)
    work_burst()
    from jobs.documents import job_document
    from jobs.report import report_markdown
    from jobs.selectors import reuse_sources

    second = Job.objects.get(id=second_id.strip())
    out = report_markdown(job_document(second), title="ferry-meeting.vtt",
                          reused_from={name: str(job.id) for name, job in reuse_sources(second).items()})
    assert f"- Reused: 2 of 2 answers at $0, without a provider call: summary, owners from job `{first_id.strip()}`" in out
    assert "- Cost: $0 (" in out
    first = Job.objects.get(id=first_id.strip())
    assert "Reused" not in report_markdown(job_document(first), title="x")
    third_id, _ = run(*args, "--no-reuse")
    work_burst()
    assert not Job.objects.get(id=third_id.strip()).tasks.filter(reused=True).exists()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_wait_says_which_answers_were_reused(alice, vtt_file, emulator):
    first = start_cli(vtt_file, emulator)
    wait_enqueued_job()
    work_burst()
    out, err = first.communicate(timeout=PROCESS_WAIT)
    assert first.returncode == 0 and "Reused" not in out, err
    first_id = str(Job.objects.get().id)
    second = start_cli(vtt_file, emulator)
    wait_enqueued_job(count=2)
    work_burst()
    out, err = second.communicate(timeout=PROCESS_WAIT)
    assert second.returncode == 0, err
    assert f"summary, owners from job `{first_id}`" in out and "at $0" in out
