"""The offline demo from a second shell: `source .data/demo.env` is the one line a new shell needs.

scripts/run.sh writes the file with lib.sh's write_demo_env (removed when it stops); here it is
written the same way for the test's database, Redis and emulator, and a shell started with an
empty environment (`env -i`) sources it and runs the CLI and scripts/demo.py against the demo.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from django.conf import settings

from jobs.models import Job
from tests.conftest import PROCESS_WAIT, ROOT, client_for, make_user, wait_enqueued_job, work_burst, worker_env

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


def write_demo_env(path, *, emulator, port: int, token: str) -> str:
    # The environment scripts/run.sh has when it writes the file: the emulator's settings exported.
    env = worker_env(emulator, GEMINI_API_KEY="offline-demo", OPENAI_API_KEY="offline-demo",
                     ANTHROPIC_API_KEY="offline-demo")
    subprocess.run(["bash", "-c", f'source scripts/lib.sh && write_demo_env {shlex.quote(str(path))} {port} '
                                  f'{shlex.quote(token)} 0'], cwd=ROOT, env=env, check=True)
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it holds a token
    return path.read_text()


def second_shell(demo_env, command: str) -> subprocess.Popen:
    """A new shell with nothing from this one: only PATH, then `source .data/demo.env`."""
    return subprocess.Popen(["env", "-i", f"PATH={os.environ['PATH']}", "HOME=/tmp", "bash", "-c",
                             f"source {shlex.quote(str(demo_env))} && {command}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_queued_job() -> Job:
    wait_enqueued_job()  # the other shell's job
    work_burst()
    return Job.objects.get()


def test_the_cli_works_from_a_second_shell(tmp_path, emulator):
    make_user("demo", plan="pro", is_staff=True)
    demo_env = tmp_path / "demo.env"
    text = write_demo_env(demo_env, emulator=emulator, port=8000, token="sr_x_y")
    assert f"REDIS_URL={settings.REDIS_URL}" in text and "OPENAI_BASE_URL=" in text
    (tmp_path / "m.txt").write_text("Ana: The ferry leaves at nine. Ben: I will book it.")
    python = f"{shlex.quote(str(ROOT / '.venv' / 'bin' / 'python'))}" if (ROOT / ".venv").exists() else "python3"
    cli = second_shell(demo_env, f"{python} manage.py analyze {tmp_path / 'm.txt'} --user demo "
                                 "--task 'summary=Provide a brief summary' --provider openai --model gpt-4o-mini "
                                 "--wait --interval 0.1")
    job = run_queued_job()
    out, err = cli.communicate(timeout=PROCESS_WAIT)
    assert cli.returncode == 0, err
    assert job.status == Job.Status.FINISHED
    assert "## summary" in out and "[emulated" in out


def test_demo_script_works_from_a_second_shell(tmp_path, emulator, live_server):
    demo = make_user("demo", plan="pro", is_staff=True)
    token = client_for(demo)._credentials["HTTP_AUTHORIZATION"].split()[1]
    demo_env = tmp_path / "demo.env"
    port = int(live_server.url.rsplit(":", 1)[1])
    write_demo_env(demo_env, emulator=emulator, port=port, token=token)
    text = demo_env.read_text().replace("http://localhost:", "http://127.0.0.1:")  # live_server binds 127.0.0.1
    demo_env.write_text(text)
    script = second_shell(demo_env, "python3 scripts/demo.py --provider anthropic --model claude-haiku-4-5")
    job = run_queued_job()
    out, err = script.communicate(timeout=PROCESS_WAIT)
    assert script.returncode == 0, out + err
    assert job.status == Job.Status.FINISHED
    assert f"submitted job {job.id}" in out and "finished" in out


def test_demo_script_says_when_its_answers_were_reused(tmp_path, emulator, live_server):
    # The second round trip on the same meeting is answered from the first at $0: it must say so, not print
    # "$0.000000" and zero tokens as if the model had answered for nothing.
    demo = make_user("demo", plan="pro", is_staff=True)
    token = client_for(demo)._credentials["HTTP_AUTHORIZATION"].split()[1]
    demo_env = tmp_path / "demo.env"
    write_demo_env(demo_env, emulator=emulator, port=int(live_server.url.rsplit(":", 1)[1]), token=token)
    demo_env.write_text(demo_env.read_text().replace("http://localhost:", "http://127.0.0.1:"))
    outputs = []
    for round_trip in (1, 2):
        script = second_shell(demo_env, "python3 scripts/demo.py --provider openai --model gpt-4o-mini")
        wait_enqueued_job(round_trip)
        work_burst()
        out, err = script.communicate(timeout=PROCESS_WAIT)
        assert script.returncode == 0, out + err
        outputs.append(out)
    first, second = outputs
    assert "reused" not in first.lower()
    assert "3 of 3 answers reused" in second, second
    assert second.count("(reused from an earlier identical task: no provider call, $0)") == 3, second
