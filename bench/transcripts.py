#!/usr/bin/env python
"""Stored transcripts and search: search over about a million turns, and storing a transcript before its job.

    python bench/transcripts.py            # 2,000 meetings (~950,000 turns), 20 s of load per measure
    python bench/transcripts.py --small    # 60 meetings, 2 s (seconds; CI)

The thirty shared meetings are stored for one user through the service (turns, search entries), then copied in
PostgreSQL (INSERT ... SELECT, the GIN index built after) to 2,000 meetings; a phrase is planted in one turn of
one copy. The data stays in the bench database for the next run. Measured in the same run:

- GET /api/v1/search at 20 clients (gunicorn as deployed; the measures in four interleaved rounds of 5 s,
  latencies pooled) for the planted phrase, and for two-word queries
  each matching under 0.1 % of the turns: p95 against the p95 of GET /api/v1/account; bound <= 3x; and, for
  comparison, for two-word queries matching 0.1 to 0.5 % of the turns (ranking every match costs in proportion);
- the same searches as ILIKE scans over the same rows (the first page, by turn id: a LIKE search may stop
  early, the full-text one ranks every match), one at a time: bound >= 20x slower than the search;
- POST /api/v1/transcripts of a 3-hour meeting (about 30,000 words) then POST /api/v1/jobs/analyze with its
  `transcript_id`, against POST /api/v1/jobs/analyze with the text inline (which stores it too): bound <= 2x.

`run(small)` returns the figures as a dict (bench/run.py calls it).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

MEETINGS, SMALL_MEETINGS = 2_000, 60
PLANTED = ("ES2007a", 40, " The zeppelin budget freeze starts on Thursday.")
PLANTED_QUERY = '"zeppelin budget"'
# Two-word queries of the corpus's own words, each matching under 1 % of its turns (the shares are reported):
# specific ones (each under 0.1 %), the bounded row; and broader ones (0.1 to 0.5 %), a comparison row, since
# ranking every match by cover density costs in proportion to the matches.
TWO_WORD = ("market research", "target group", "energy source", "social care", "training data", "language model")
BROAD_TWO_WORD = ("speech recognition", "school children", "user interface", "health care", "local authority",
                  "mental health")
LONG_MEETING, SMALL_MEETING = ("Bed015.txt", "Bro011.txt"), ("TS3010a.txt",)
SEARCH_BOUND, ILIKE_BOUND, STORE_BOUND = 3.0, 20.0, 2.0
USERNAME = "bench-search"
ANALYZE = {"provider": "openai", "model": "gpt-4o-mini", "tasks": {"summary": "Provide a brief summary"},
           "reuse": False}


def meeting_files() -> list[Path]:
    return sorted(common.TRANSCRIPTS.glob("*.txt")) + sorted((common.TRANSCRIPTS / "corpus").glob("*.txt"))


def seed(user, meetings: int) -> int:
    """The user's `meetings` transcripts (kept from an earlier run when they are all there); their turns."""
    from django.db import connection, transaction

    from transcripts.models import Transcript, TranscriptTurn
    from transcripts.selectors import turns_matching
    from transcripts.services import transcript_store

    owned = Transcript.objects.filter(owner=user)
    if owned.count() == meetings and turns_matching(user=user, q=PLANTED_QUERY).exists():
        _vacuum()
        return TranscriptTurn.objects.filter(owner=user).count()
    owned.delete()
    files = meeting_files()
    for path in files:
        transcript_store(owner=user, text=path.read_text(encoding="utf-8"), fmt="text", title=path.stem,
                         transcript_language="en")
    turn_table, transcript_table = TranscriptTurn._meta.db_table, Transcript._meta.db_table
    (index,) = [index for index in TranscriptTurn._meta.indexes if index.name == "transcript_turn_search"]
    with transaction.atomic(), connection.cursor() as cursor, connection.schema_editor() as editor:
        # Built once after the copies (a GIN index built in one pass is much faster than a million inserts).
        editor.remove_index(TranscriptTurn, index)
        cursor.execute(
            "CREATE TEMP TABLE bench_copy ON COMMIT DROP AS "
            "SELECT gen_random_uuid() AS id, b.id AS source, n FROM generate_series(1, %s) AS n "
            f"JOIN (SELECT id, row_number() OVER (ORDER BY title) AS rn FROM {transcript_table} WHERE owner_id = %s) b "
            "ON b.rn = (n - 1) %% %s + 1", [meetings - len(files), user.id, len(files)])
        cursor.execute(
            f"INSERT INTO {transcript_table} (id, owner_id, title, occurred_at, tags, transcript_language, text, "
            "format, digest, turn_count, speakers, tokens, created_at) "
            "SELECT c.id, t.owner_id, t.title || ' #' || c.n, t.occurred_at - make_interval(days => c.n), t.tags, "
            "t.transcript_language, t.text, t.format, encode(sha256(convert_to(t.digest || c.n, 'UTF8')), 'hex'), "
            f"t.turn_count, t.speakers, t.tokens, now() FROM bench_copy c JOIN {transcript_table} t ON t.id = c.source")
        cursor.execute(
            f"INSERT INTO {turn_table} (transcript_id, owner_id, number, speaker, start, text, config) "
            f"SELECT c.id, t.owner_id, t.number, t.speaker, t.start, t.text, t.config FROM bench_copy c "
            f"JOIN {turn_table} t ON t.transcript_id = c.source")
        name, line, words = PLANTED  # in the last copy of that meeting
        cursor.execute(f"UPDATE {turn_table} SET text = text || %s WHERE number = %s AND transcript_id = "
                       f"(SELECT c.id FROM bench_copy c JOIN {transcript_table} t ON t.id = c.source "
                       "WHERE t.title = %s ORDER BY c.n DESC LIMIT 1)", [words, line, name])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the copies' deferred foreign key checks, before the index
        editor.add_index(TranscriptTurn, index)
    _vacuum()
    return TranscriptTurn.objects.filter(owner=user).count()


def _vacuum() -> None:
    """VACUUM ANALYZE the turns and transcripts, as autovacuum would have by the time anyone searches: the store
    measure of every earlier run deletes its transcripts, and where autovacuum is off (as on the machine of
    bench/results) their dead turns, which hold the corpus's own words, would be read by every search."""
    from django.db import connection

    from transcripts.models import Transcript, TranscriptTurn

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {TranscriptTurn._meta.db_table}, {Transcript._meta.db_table}")


def match_shares(user, total: int) -> dict[str, float]:
    from transcripts.selectors import turns_matching

    return {q: turns_matching(user=user, q=q).count() / total for q in (*TWO_WORD, *BROAD_TWO_WORD)}


def _median_seconds(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ilike_against_search(user, rounds: int) -> dict[str, tuple[float, float]]:
    """Seconds (median) of the search's query and of the ILIKE scan of the same words: planted and two-word."""
    from django.db import connection

    from transcripts.models import Transcript, TranscriptTurn
    from transcripts.selectors import turns_search

    def ilike(words: list[str]) -> list:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT t.id, t.transcript_id, t.number, t.speaker, t.start FROM {TranscriptTurn._meta.db_table} t "
                f"JOIN {Transcript._meta.db_table} tr ON tr.id = t.transcript_id WHERE tr.owner_id = %s AND "
                + " AND ".join("t.text ILIKE %s" for _ in words) + " ORDER BY t.id LIMIT 20",
                [user.id, *(f"%{word}%" for word in words)])
            return cursor.fetchall()

    figures = {}
    for kind, queries in (("planted", [(PLANTED_QUERY, ["zeppelin budget"])]),
                          ("two-word", [(q, q.split()) for q in TWO_WORD])):
        search = statistics.median(_median_seconds(lambda q=q: turns_search(user=user, q=q, limit=20), rounds)
                                   for q, _ in queries)
        scan = statistics.median(_median_seconds(lambda words=words: ilike(words), max(1, rounds // 2))
                                 for _, words in queries)
        figures[kind] = (search, scan)
    return figures


def _post(url: str, path: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def store_then_analyze(url: str, token: str, text: str, rounds: int) -> tuple[float, float]:
    """Seconds (median) of POST transcripts + POST jobs/analyze by id, and of POST jobs/analyze inline; a new
    text each time (a text stored before would be found, not stored)."""
    by_id, inline = [], []
    for round_ in range(rounds + 2):
        if round_ == 2:  # the first rounds load each gunicorn worker's tokenizer: not timed
            by_id, inline = [], []
        started = time.perf_counter()
        stored = _post(url, "/api/v1/transcripts", token, {"transcript": f"{text}\nNote: run {uuid.uuid4()}"})
        _post(url, "/api/v1/jobs/analyze", token, {"transcript_id": stored["id"], **ANALYZE})
        by_id.append(time.perf_counter() - started)
        started = time.perf_counter()
        _post(url, "/api/v1/jobs/analyze", token, {"transcript": f"{text}\nNote: run {uuid.uuid4()}", **ANALYZE})
        inline.append(time.perf_counter() - started)
    return statistics.median(by_id), statistics.median(inline)


def run(small: bool = False) -> dict:
    from django.apps import apps

    if not apps.ready:
        common.setup_django(OPENAI_API_KEY="bench")
    from accounts.services import api_token_create
    from transcripts.models import Transcript
    from transcripts.services import transcript_delete

    common.reset_state()
    user = common.bench_user(USERNAME)
    meetings = SMALL_MEETINGS if small else MEETINGS
    started = time.monotonic()
    turns = seed(user, meetings)
    seeded_s = time.monotonic() - started
    shares = match_shares(user, turns)
    ilike = ilike_against_search(user, rounds=3 if small else 5)
    token = api_token_create(user=user, name="bench").secret
    seconds, rounds = (2, 1) if small else (20, 4)
    long_text = "\n".join((common.TRANSCRIPTS / name).read_text(encoding="utf-8")
                          for name in (SMALL_MEETING if small else LONG_MEETING))
    with common.api_server(common.base_env()) as url:
        planted = f"/api/v1/search?{urlencode({'q': PLANTED_QUERY})}"
        two_word = [f"/api/v1/search?{urlencode({'q': q})}" for q in TWO_WORD]
        broad = [f"/api/v1/search?{urlencode({'q': q})}" for q in BROAD_TWO_WORD]
        common.load(url, [planted, *two_word, *broad, "/api/v1/account"], "GET", None, token, 1)  # warm both workers
        loads = common.load_interleaved(url, {"account": ("/api/v1/account", "GET", None),
                                              "found": (planted, "GET", None), "pairs": (two_word, "GET", None),
                                              "broad": (broad, "GET", None)}, token, seconds, rounds)
        account, found, pairs, broad_pairs = loads["account"], loads["found"], loads["pairs"], loads["broad"]
        store = store_then_analyze(url, token, long_text, rounds=2 if small else 5)
    common.reset_state()  # the store measure's jobs first: a queued job keeps its transcript from deletion
    for stored in Transcript.objects.filter(owner=user, title=""):  # then the store measure's transcripts
        transcript_delete(transcript=stored)
    load_note = (f"{meetings:,} meetings, {turns:,} turns (seeded or found in {seeded_s:.0f} s); 20 clients, "
                 f"{seconds} s each in {rounds} interleaved round(s), gunicorn {common.GUNICORN_WORKERS}×{common.GUNICORN_THREADS} gthread; errors "
                 f"{found['errors']}/{pairs['errors']}/{broad_pairs['errors']}/{account['errors']}")
    rows = [
        _row("search", f"p95 GET search, planted phrase (p50 {found['p50'] * 1000:.0f} ms) vs GET account",
             found["p95"] * 1000, account["p95"] * 1000, SEARCH_BOUND, "ms", load_note),
        _row("search", f"p95 GET search, two-word queries (p50 {pairs['p50'] * 1000:.0f} ms) vs GET account",
             pairs["p95"] * 1000, account["p95"] * 1000, SEARCH_BOUND, "ms", _shares_note(TWO_WORD, shares)),
        _row("search", f"p95 GET search, broader two-word queries (p50 {broad_pairs['p50'] * 1000:.0f} ms) vs GET "
             "account", broad_pairs["p95"] * 1000, account["p95"] * 1000, None, "ms",
             _shares_note(BROAD_TWO_WORD, shares)),
    ]
    for kind, (search, scan) in ilike.items():
        rows.append(_row("search", f"{kind} query: ILIKE scan vs the search's query (ms, one at a time)",
                         scan * 1000, search * 1000, ILIKE_BOUND, "ms", higher_is_better=True))
    words = len(long_text.split())
    rows.append(_row("transcript store", f"POST transcripts + analyze by id vs analyze inline, {words:,} words",
                     store[0] * 1000, store[1] * 1000, STORE_BOUND, "ms",
                     "one client; a new text each time (stored with its turns and search entries on both sides)"))
    return {"ok": all(row["ok"] for row in rows), "rows": rows}


def _shares_note(queries: tuple[str, ...], shares: dict[str, float]) -> str:
    low, high = min(shares[q] for q in queries), max(shares[q] for q in queries)
    return f"queries {', '.join(queries)}: {low:.2%} to {high:.2%} of the turns each"


def _row(case: str, measure: str, value: float, baseline: float, bound: float | None, unit: str, notes: str = "",
         *, higher_is_better: bool = False) -> dict:
    """A row of bench/run.py's table; no bound: a comparison row."""
    from bench.run import ratio_row

    row = ratio_row(case, measure, value, baseline, higher_is_better=higher_is_better, bound=bound or 0.0, unit=unit,
                    notes=notes)
    if bound is None:
        row.bound, row.ok = "(comparison)", True
    return asdict(row)


if __name__ == "__main__":
    sys.exit(common.module_main(run, __doc__, "60 meetings, 2 s of load (seconds; CI)"))
