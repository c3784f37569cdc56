"""The benchmark runs end to end in its small version, so it never rots.

Bounds are not asserted here (a shared CI machine is noisy; the full run by hand
is where they are judged): the smoke run must complete every case, with real
jobs through real workers, and write its table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every row of these has a positive value and baseline (the run itself must complete every case, these included).
CASES = ["queue overhead", "queue overhead, PgBouncer", "in flight", "thousand in flight", "fanout", "long transcript",
         "API", "scale-out", "priority", "memory", "price lookup", "search", "transcript store", "failover"]

pytestmark = pytest.mark.subprocess


def database_exists(name: str) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        return cursor.fetchone() is not None


@pytest.mark.django_db
def test_small_benchmark_completes_every_case(settings):
    if settings.REDIS_SENTINELS:
        pytest.skip("the benchmarks run on a REDIS_URL alone (their own database of it), and this run's Redis is "
                    "behind Sentinels: run the suite without REDIS_SENTINELS for the benchmark's smoke run")
    env = dict(os.environ)
    # A PostgreSQL database of its own (named after this run's SR_TEST_ID), dropped when the run ends, and
    # the run's own Redis database (REDIS_URL: the suite owns it and flushes it around every test).
    database = f"scriptripper_bench_smoke{os.environ.get('SR_TEST_ID', '')}"
    env.update({"BENCH_DATABASE": database, "BENCH_REDIS_URL": settings.REDIS_URL})
    result = subprocess.run([sys.executable, "bench/run.py", "--small", "--drop-database"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not database_exists(database), f"the smoke run left its database {database} behind"
    table = (ROOT / "bench" / "results" / "smoke.md").read_text()
    for case in CASES:
        rows = [line for line in table.splitlines() if line.startswith(f"| {case} |")]
        assert rows, f"no row for {case}:\n{table}"
        for row in rows:
            value, baseline = row.split("|")[3], row.split("|")[4]
            assert float(value.split()[0]) > 0 and float(baseline.split()[0]) > 0, row
