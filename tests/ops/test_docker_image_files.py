"""The Docker image's file set, run for real without a Docker engine.

What the image holds is assembled here exactly as `docker build -f docker/Dockerfile .` would:
the repository's files minus what .dockerignore leaves out (Docker's rules: last matching pattern
wins, `!` re-includes, a matched directory takes its contents with it), and an interpreter that
sees only what `pip install -r requirements/base.txt` installs (the pinned packages and what they
require, linked from this venv; no test tool, no repository on the path). From that directory
alone: collectstatic (as the Dockerfile does), migrate a fresh database, start the API (gunicorn,
reading gunicorn.conf.py from the working directory) and a worker, and run a job to the end against
the provider emulator (which runs from the test process: the image does not contain it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from importlib import metadata
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.conftest import PROCESS_WAIT, ROOT, wait_answering, wait_for

DOCKERIGNORE = ROOT / ".dockerignore"
BASE_REQUIREMENTS = ROOT / "requirements" / "base.txt"


# --- the file set -------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regex over a /-separated path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def excluded(path: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent directories, decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not negated
    return verdict


def image_files() -> list[str]:
    """The build context a fresh clone sends (git's files), minus .dockerignore's exclusions."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    rules = dockerignore_rules()
    return sorted(p for p in tracked.decode().split("\0") if p and not excluded(p, rules) and (ROOT / p).is_file())


def assemble_image(app: Path) -> None:
    # The Dockerfile: COPY requirements/base.txt requirements/base.txt, then COPY . .
    for relative in image_files():
        target = app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)


def test_the_file_set_follows_dockerignore():
    files = image_files()
    assert {"manage.py", "gunicorn.conf.py", "requirements/base.txt", ".env.example", "scriptripper/settings.py",
            "jobs/worker/workers.py", "analysis/engine/catalogue.toml", "docker/Dockerfile"} <= set(files)
    for left_out in ("tests/", "emulator/", "bench/", "docs/", ".ci/", ".git/"):
        assert not any(f.startswith(left_out) for f in files), left_out
    assert "docker/compose.yml" not in files and ".env" not in files
    assert not any(f.endswith(".pyc") or "__pycache__" in f for f in files)


def test_dockerignore_rules_behave_as_dockers():
    rules = [(False, _pattern_regex(p)) for p in ("**/__pycache__", ".env.*", "tests")] + \
            [(True, _pattern_regex(".env.example"))]
    assert excluded("jobs/__pycache__/x.pyc", rules) and excluded("__pycache__/a", rules)
    assert excluded(".env.local", rules) and not excluded(".env.example", rules)
    assert excluded("tests/ops/test_x.py", rules) and not excluded("jobs/tests.py", rules)


# --- the interpreter: only what base.txt installs ---------------------------------------------------

def _closure(requirements: list[str]) -> set[str]:
    """Distribution names pip would install for these requirements (from this venv's metadata)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(Requirement(r), set()) for r in requirements]
    while todo:
        requirement, _ = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(requirement.name)
        for raw in dist.requires or []:
            child = Requirement(raw)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                todo.append((child, set()))
    return {key.split("[")[0] for key in seen}


def base_requirements() -> list[str]:
    lines = [line.split("#")[0].strip() for line in BASE_REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def build_venv(target: Path) -> Path:
    """A venv of this Python whose site-packages links only base.txt's distributions and their requirements."""
    from packaging.utils import canonicalize_name

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    ours = Path(sysconfig.get_path("purelib"))
    wanted = _closure(base_requirements())
    for dist in metadata.distributions(path=[str(ours)]):
        if canonicalize_name(dist.metadata["Name"]) not in wanted:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = ours / top
            if source.exists() and not (site / top).exists() and top != "__pycache__":
                (site / top).symlink_to(source)
    return target / "bin" / "python"


# --- running it ---------------------------------------------------------------------------------------

@pytest.fixture
def image_database():
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_image"
    admin = f"postgresql://{db.get('USER') or 'root'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{admin}/{name}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.mark.subprocess
def test_the_image_files_migrate_serve_and_run_a_job(tmp_path, emulator, image_database):
    app = tmp_path / "app"
    assemble_image(app)
    python = build_venv(tmp_path / "venv")
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1",
           "DJANGO_SETTINGS_MODULE": "scriptripper.settings", "DATABASE_URL": image_database,
           "REDIS_URL": settings.REDIS_URL, "LOG_LEVEL": "warning",
           "OPENAI_API_KEY": "image-test", "ANTHROPIC_API_KEY": "image-test", "GEMINI_API_KEY": "image-test",
           "OPENAI_BASE_URL": emulator.openai_base_url, "ANTHROPIC_BASE_URL": emulator.url,
           "GEMINI_BASE_URL": emulator.url, "GEMINI_API_VERSION": "v1beta"}

    def manage(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(python), "manage.py", *args], cwd=app, env=env, capture_output=True, text=True,
                                timeout=PROCESS_WAIT)
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
        return result

    # Nothing of the repository or of the test tools is importable: the image's own files only.
    probe = subprocess.run([str(python), "-c", "import emulator"], cwd=app, env=env, capture_output=True)
    assert probe.returncode != 0
    probe = subprocess.run([str(python), "-c", "import pytest"], cwd=app, env=env, capture_output=True)
    assert probe.returncode != 0

    manage("collectstatic", "--noinput", "--verbosity", "0")
    manage("migrate", "--noinput")
    token = manage("createtoken", "imagecheck", "--plan", "pro").stdout.strip().splitlines()[-1]

    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    api = subprocess.Popen([str(python), "-m", "gunicorn", "scriptripper.wsgi:application", "--bind",
                            f"127.0.0.1:{port}", "--workers", "1"], cwd=app, env=env,
                           stdout=open(logs / "api.log", "w"), stderr=subprocess.STDOUT)
    worker = subprocess.Popen([str(python), "manage.py", "rqworker", "high", "default", "low"], cwd=app, env=env,
                              stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # The API answers once gunicorn has loaded the app.
        wait_answering(api, lambda: http("GET", f"{url}/api/v1/", token)["docs"], "the image's API", logs / "api.log")
        job = http("POST", f"{url}/api/v1/jobs/analyze", token, {
            "transcript": "Ana: The ferry leaves at nine. Ben: I will book it.", "provider": "openai",
            "model": "gpt-4o-mini", "tasks": {"summary": "Provide a brief summary"}})

        def final() -> dict | None:
            assert worker.poll() is None, "the image's worker exited:\n" + (logs / "worker.log").read_text()[-3000:]
            document = http("GET", f"{url}/api/v1/jobs/{job['job_id']}", token)
            return document if document["status"] in ("finished", "failed", "canceled") else None

        document = wait_for(final, PROCESS_WAIT, "the image's job to end", interval=0.2)
        assert document["status"] == "finished", document
        assert document["result"]["results"]["summary"]
        assert document["result"]["metadata"]["total_cost"] > 0
        # The admin's assets come from collectstatic's output, served by whitenoise under gunicorn.
        with urllib.request.urlopen(f"{url}/static/admin/css/base.css", timeout=10) as response:
            assert response.status == 200
    finally:
        for proc in (worker, api):
            proc.terminate()
        for proc in (worker, api):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
