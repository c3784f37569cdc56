"""What a newcomer copies from the README works as pasted: the endpoint recipes in `.env`, the Docker steps
on a laptop, the ports `scripts/run.sh` takes."""

from __future__ import annotations

import json
import os
import re

import environ
import pytest

from scriptripper.env import env_endpoints
from tests.conftest import ROOT, run_manage
from tests.security.test_production_settings import production_env

README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    return README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]


def recipes() -> dict[str, str]:
    """The recipes of "Local models", each as it stands in the README (its comment line first)."""
    block = section("## Local models and other OpenAI-compatible endpoints").split("```sh\n", 1)[1].split("```")[0]
    found: dict[str, str] = {}
    for part in re.split(r"\n(?=# )", block.strip()):
        name = part.split()[1].lower()
        found[name] = part
    return found


def test_there_are_recipes_for_ollama_vllm_and_llama_cpp():
    assert {"ollama", "vllm", "llama.cpp"} <= set(recipes())


@pytest.mark.parametrize("name", ["ollama", "vllm", "llama.cpp"])
def test_a_recipe_pasted_into_dotenv_as_shown_is_read(name, tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text(recipes()[name] + "\n")
    # Set, then removed: monkeypatch then takes it away again after the test, whatever read_env puts there.
    monkeypatch.setenv("OPENAI_COMPATIBLE_ENDPOINTS", "")
    monkeypatch.delenv("OPENAI_COMPATIBLE_ENDPOINTS")
    environ.Env.read_env(dotenv)  # what scriptripper/settings.py does with the project's .env
    endpoints = env_endpoints(os.environ["OPENAI_COMPATIBLE_ENDPOINTS"], "")  # ImproperlyConfigured if not
    assert len(endpoints) == 1


def endpoint_of(name: str) -> dict:
    text = recipes()[name]
    return json.loads(re.search(r"OPENAI_COMPATIBLE_ENDPOINTS='(.*)'", text).group(1))[0]


def test_no_recipe_takes_the_port_of_scriptripper_or_its_emulator():
    for name in recipes():
        port = re.search(r"://[^/:]+:(\d+)", endpoint_of(name)["base_url"]).group(1)
        assert port not in ("8000", "8765"), (name, port)  # scripts/run.sh's PORT and EMULATOR_PORT defaults
        assert f"--port {port}" in recipes()[name] or name != "vllm", recipes()[name]  # vllm serve's default is 8000


def test_the_ollama_recipe_raises_ollamas_own_context_length():
    # Ollama cuts a longer prompt to its own context length without an error: the window we plan for must be
    # the one it serves.
    endpoint = endpoint_of("ollama")
    windows = {model["context_window"] for model in endpoint["models"].values()}
    assert [f"OLLAMA_CONTEXT_LENGTH={window}" in recipes()["ollama"] for window in windows] == [True]


def test_the_docker_steps_say_how_to_try_it_on_localhost():
    # Compose runs with ENVIRONMENT=production, which redirects plain HTTP to HTTPS: on a laptop without a TLS
    # proxy every request was a 301 to https://localhost.
    docker = re.search(r"- \*\*Docker\*\*.*?(?=\n- \*\*|\n## )", README, re.S).group(0)
    assert "SECURE_SSL_REDIRECT=false" in docker and "ALLOWED_HOSTS=localhost" in docker, docker
    code = ("from django.test import Client; r = Client().get('/api/v1/', HTTP_HOST='localhost'); "
            "print(r.status_code)")
    result = run_manage("shell", "-c", code, env=production_env(SECURE_SSL_REDIRECT="false",
                                                                ALLOWED_HOSTS="localhost"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "200"


def test_the_ports_run_sh_takes_are_documented():
    start = section("## On a fresh machine: two commands")
    assert "`PORT`" in start and "`EMULATOR_PORT`" in start
