"""scripts/run.sh as a newcomer meets it: a port already taken, and a second shell after `source .data/demo.env`."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess

import pytest

from tests.conftest import PROCESS_WAIT, ROOT, worker_env

pytestmark = pytest.mark.subprocess

PROVIDER_KEYS = ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def listening() -> socket.socket:
    """Another server: something listening on a port of this machine."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def run_sh(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=PROCESS_WAIT)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("variable, what", [("PORT", "the API"), ("EMULATOR_PORT", "emulator")])
def test_a_taken_port_stops_run_sh_before_anything_starts_saying_which_variable_moves_it(
        emulator, variable, what):
    env = worker_env(emulator)  # the test's database and Redis, if it got as far as using them
    env.pop("DJANGO_SETTINGS_MODULE")
    for key in PROVIDER_KEYS:  # no key: the offline demo, which needs the emulator's port too
        env.pop(key, None)
    with listening() as taken, listening() as free_for_now:
        ports = {"PORT": free_for_now.getsockname()[1], "EMULATOR_PORT": free_for_now.getsockname()[1]}
        free_for_now.close()
        ports[variable] = taken.getsockname()[1]
        if variable == "PORT":
            ports["EMULATOR_PORT"] = 1  # never reached: the API's port is checked first
        env.update({name: str(port) for name, port in ports.items()})
        result = run_sh(env)
    assert result.returncode != 0
    assert f"port {ports[variable]} is in use" in result.stderr and f"{variable}=" in result.stderr, result.stderr
    assert what in result.stderr
    # Nothing was started or printed as if it ran: no banner, no token, no demo user.
    assert "ScriptRipper is running" not in result.stdout and "export TOKEN" not in result.stdout
    assert "applying migrations" not in result.stdout
    from accounts.models import User

    assert not User.objects.filter(username="demo").exists()


def test_demo_env_exports_the_redis_and_database_urls_even_when_defaulted(tmp_path):
    # After `source .data/demo.env`, the README's `redis-cli -u "$REDIS_URL" ping` must reach the demo's Redis,
    # also when REDIS_URL was never set (settings.py's default, or .env's).
    demo_env = tmp_path / "demo.env"
    script = (f"source scripts/lib.sh && app_settings && write_demo_env {shlex.quote(str(demo_env))} 8000 "
              f"sr_x_y $PROVIDER_CONFIGURED")
    clean = {"PATH": os.environ["PATH"], "HOME": "/tmp"}  # a shell with nothing set: every value defaulted
    subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in clean.items()), "bash", "-c", script], cwd=ROOT,
                   check=True, timeout=PROCESS_WAIT)
    text = demo_env.read_text()
    redis_url = re.search(r"^export REDIS_URL=(redis://\S+)$", text, re.M)
    database_url = re.search(r"^export DATABASE_URL=(postgresql://\S+)$", text, re.M)
    assert redis_url and database_url, text
    # The README's troubleshooting line, in a second shell that sourced the file (PING reads and writes nothing).
    ping = "redis-cli -u \"$REDIS_URL\" ping" if shutil.which("redis-cli") else (
        "python3 -c 'import os; print(os.environ[\"REDIS_URL\"])'")
    second = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in clean.items()), "bash", "-c",
                             f"source {shlex.quote(str(demo_env))} && echo $DATABASE_URL && {ping}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.stdout.split()[0] == database_url.group(1), second.stdout + second.stderr
    assert second.stdout.split()[1] in ("PONG", redis_url.group(1)), second.stdout + second.stderr
