"""The code keeps no session state in PostgreSQL, so that it runs through a transaction pooler (PgBouncer with
DATABASE_POOL_MODE=transaction): no session SET, advisory lock, LISTEN, named cursor, prepared statement or
temporary table in any SQL it writes (tests/pooling.py says why each), and no named cursor or role switch asked
of Django or psycopg. What the ORM sends is checked statement by statement in a run through PgBouncer
(`pytest --pgbouncer`, tests/conftest.py).
"""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT
from tests.pooling import session_state

PACKAGES = ("scriptripper", "accounts", "analysis", "jobs")

# Python that opens session state without writing its SQL: a named (server-side) cursor, Django's chunked cursor
# (which is one unless DISABLE_SERVER_SIDE_CURSORS), a role switched for the session (OPTIONS["assume_role"]).
PYTHON_SESSION_STATE = {
    "a named cursor": re.compile(r"\.cursor\(\s*(name\s*=|[\"'])|\bcreate_cursor\(\s*name|\bchunked_cursor\("),
    "a role set for the session": re.compile(r"\bassume_role\b"),
}


def string_literals(tree: ast.AST) -> list[str]:
    """Every string the module writes, f-strings with their placeholders as `?`."""
    texts = []
    parts = set()  # the literal pieces of f-strings: read with their f-string, not alone
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(part.value if isinstance(part, ast.Constant) else "?" for part in node.values))
            parts.update(id(part) for part in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            texts.append(node.value)
    return texts


def test_no_session_state_in_the_code():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            name = path.relative_to(ROOT)
            found += [(str(name), what, text[:80]) for text in string_literals(ast.parse(source))
                      if (what := session_state(text))]
            found += [(str(name), what, pattern.search(source).group(0))
                      for what, pattern in PYTHON_SESSION_STATE.items() if pattern.search(source)]
    assert not found, found


def test_the_scan_sees_session_state_and_lets_transaction_state_pass():
    for sql in ("SET TIME ZONE 'UTC'", "set search_path to app", "RESET ALL", "SELECT pg_advisory_lock(42)",
                "select pg_try_advisory_lock(1, 2)", "LISTEN job_events", "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                "PREPARE q AS SELECT 1", "CREATE TEMP TABLE t (x int)", "SELECT set_config('a.b', 'c', false)"):
        assert session_state(sql), sql
    for sql in ("SET LOCAL statement_timeout = 5000", 'UPDATE "jobs_job" SET status = %s WHERE id = %s',
                "SELECT pg_advisory_xact_lock(42)", "SELECT set_config('a.b', 'c', true)", "NOTIFY job_events",
                "Set tasks_total and tasks_done on each job", "Reset the provider clients."):
        assert session_state(sql) is None, sql
    tree = ast.parse('cursor.execute(f"SET statement_timeout = {ms}")\nconnection.cursor(name="big").execute(q)')
    assert [session_state(text) for text in string_literals(tree)] == ["a session SET", None]
    assert PYTHON_SESSION_STATE["a named cursor"].search('connection.cursor(name="big")')
