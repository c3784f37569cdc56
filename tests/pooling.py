"""What a transaction pooler (PgBouncer with pool_mode = transaction) cannot carry: session state.

Between two transactions of one client, PgBouncer may hand the client's server connection to another client
and give it another one. Whatever a statement leaves in the session (a SET, an advisory lock, a LISTEN, a
cursor held open, a prepared statement, a temporary table) then lands on someone else's connection, or is gone
when the next transaction looks for it. The code issues none (tests/ops/test_no_session_state.py scans it,
and a run through PgBouncer checks every statement the test process sends: tests/conftest.py).
"""

from __future__ import annotations

import re

# Each: what it is, and the SQL that starts it. Transaction-scoped forms are fine: SET LOCAL,
# pg_advisory_xact_lock, set_config(..., true).
SESSION_STATE: dict[str, re.Pattern[str]] = {
    "a session SET": re.compile(r"^\s*SET\s+(SESSION\s+)?(TIME\s+ZONE|ROLE|SCHEMA|NAMES|[\w.]+\s*(=|TO\b))|"
                                r"^\s*(RESET|DISCARD)\s+\w+\s*;?\s*$", re.I),
    "an advisory lock held by the session": re.compile(r"\bpg_(try_)?advisory_(un)?lock(_shared|_all)?\s*\(", re.I),
    "LISTEN": re.compile(r"^\s*(UN)?LISTEN\b", re.I),
    "a named cursor": re.compile(r"^\s*DECLARE\b|\bWITH\s+HOLD\b", re.I),
    "a prepared statement": re.compile(r"^\s*(PREPARE|DEALLOCATE|EXECUTE)\b", re.I),
    "a temporary table": re.compile(r"\bCREATE\s+((GLOBAL|LOCAL)\s+)?TEMP(ORARY)?\s+TABLE\b", re.I),
    "a session set_config": re.compile(r"\bset_config\s*\([^)]*,\s*false\s*\)", re.I),
}


def session_state(sql: str) -> str | None:
    """What session state `sql` leaves behind, or None."""
    for what, pattern in SESSION_STATE.items():
        if pattern.search(sql):
            return what
    return None
