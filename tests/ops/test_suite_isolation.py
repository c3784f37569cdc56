"""The test suite touches no Redis data that is not its own.

It flushes its Redis database (REDIS_URL) around every test, so it claims that database
first and refuses one holding keys that no test run created, or one a live run is using;
the fuzz run and the benchmark smoke run use that same database, derived from REDIS_URL,
never a database number written in the code.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from tests import conftest
from tests.conftest import ROOT, TEST_DATABASE_MARK, TEST_RUN_LEASE, claim_test_redis


class Refused(Exception):
    pass


@pytest.fixture
def refuse(monkeypatch):
    def exit_(message, returncode=None):
        raise Refused(message)

    monkeypatch.setattr(conftest.pytest, "exit", exit_)


def test_a_database_with_keys_no_test_run_created_is_refused(clean_redis, refuse):
    # As if REDIS_URL pointed at the development queues: data, and no test mark.
    clean_redis.flushdb()
    clean_redis.set("rq:queue:default-of-someone", "x")
    with pytest.raises(Refused, match="keys that no test run created"):
        claim_test_redis(clean_redis)
    assert clean_redis.get("rq:queue:default-of-someone") == b"x"  # refused, not flushed


def test_a_database_another_live_run_uses_is_refused(clean_redis, refuse):
    clean_redis.set(TEST_RUN_LEASE, "otherhost:4242:_other")
    with pytest.raises(Refused, match="in use by another test run"):
        claim_test_redis(clean_redis)


def test_a_lease_left_by_a_dead_run_of_this_machine_is_taken_over(clean_redis, refuse):
    import socket
    import subprocess

    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    clean_redis.set(TEST_RUN_LEASE, f"{socket.gethostname()}:{gone.pid}:_crashed")
    claim_test_redis(clean_redis)
    assert clean_redis.get(TEST_RUN_LEASE).decode() != f"{socket.gethostname()}:{gone.pid}:_crashed"


def test_an_empty_or_test_marked_database_is_claimed(clean_redis, refuse):
    clean_redis.flushdb()
    claim_test_redis(clean_redis)
    assert clean_redis.exists(TEST_DATABASE_MARK) and clean_redis.exists(TEST_RUN_LEASE)
    clean_redis.set("rq:queue:default", "left by an earlier run")
    claim_test_redis(clean_redis)  # marked: what it holds is test data


def test_the_fuzz_run_uses_the_runs_own_redis_database():
    from tests.security.test_schemathesis import fuzz_redis_url

    assert fuzz_redis_url() == settings.REDIS_URL


def test_no_test_names_a_redis_database_of_its_own():
    # A hard-coded "/14" or "/10" is another run's (or someone's) database; derive it from REDIS_URL.
    allowed = {ROOT / "tests" / "settings.py"}  # the default REDIS_URL of a run that sets none
    # (URLs of a port where nothing listens, for outages, are fine: they reach no one's data.)
    pattern = re.compile(r"""redis://[^"'\s]*:6379/\d+|rsplit\("/", 1\)\[0\] \+ "/\d+"|path="/\d+\"""")
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        if path in allowed or path.name == "test_docker_files.py":  # compose's own service URL
            continue
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in pattern.finditer(path.read_text())]
    assert not offenders, offenders


def test_no_code_flushes_every_database():
    offenders = [str(path.relative_to(ROOT)) for folder in ("tests", "bench", "jobs", "scripts")
                 for path in (ROOT / folder).rglob("*.py")
                 if path.name != "test_suite_isolation.py" and ".flushall(" in path.read_text()]
    assert not offenders, offenders


def test_no_wait_is_bounded_below_the_process_wait():
    """A wait is an upper bound against a hang, never a measure: on a loaded 2-core machine a worker's start
    alone can take half a minute, so a wait bounded by a figure of its own (30 s) failed full runs that its
    test passed alone. Every `wait_for` is bounded by conftest.PROCESS_WAIT (or a name), never a literal."""
    import ast

    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "wait_for" and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value < conftest.PROCESS_WAIT):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: wait_for(..., {node.args[1].value})")
    assert not offenders, offenders
