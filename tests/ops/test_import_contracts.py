"""The layers the README's "Layout" describes, checked by import-linter's contracts in pyproject.toml: kept by
the code as it is, and broken (lint-imports fails, naming the contract) by an import that crosses one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_import_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def broken_contracts(tmp_path: Path, path: str, added: str) -> str:
    """lint-imports' report on a copy of the code with `added` appended to the module at `path` (it must fail)."""
    root = copy_of_the_code(tmp_path)
    module = root / path
    module.write_text((module.read_text() if module.exists() else "") + added)
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout


def test_django_in_the_engine_breaks_the_pure_engine_contract(tmp_path):
    report = broken_contracts(tmp_path, "analysis/engine/probe.py", "from django.conf import settings  # noqa: F401\n")
    assert "The analysis engine imports neither Django nor the apps" in report
    assert "analysis.engine.probe -> django" in report


def test_an_import_inside_a_function_that_closes_a_circle_breaks_the_acyclic_contract(tmp_path):
    # jobs.webhooks renders the job document (jobs.documents -> jobs.serializers); a serializer that reached
    # back into jobs.webhooks from inside a function closes a circle all the same.
    report = broken_contracts(tmp_path, "jobs/serializers.py",
                              "\n\ndef _probe():\n    from jobs.webhooks import webhook_deliver  # noqa: F401\n")
    assert "No import circle among the modules of each app" in report and "BROKEN" in report


def test_production_code_importing_the_emulator_breaks_a_contract(tmp_path):
    report = broken_contracts(tmp_path, "jobs/services.py", "\nimport emulator.server  # noqa: E402,F401\n")
    assert "Production code never imports the tests, the provider emulator or the benchmarks" in report
