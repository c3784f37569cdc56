#!/usr/bin/env python
"""Failover: the Redis primary SIGKILLed under a steady flow of jobs, the replica promoted by three Sentinels.

    python bench/failover.py            # the same case, standalone
    python bench/failover.py --small    # the same (it takes seconds either way)

Measured: the seconds from the primary's death to the first job finished on the new primary, against the
Sentinels' own down-after-milliseconds plus the failover their logs show (from the first +sdown to
+switch-master): what the Sentinels alone need before there is a primary to reach. Bound: <= 2x.

Real servers: a private Redis primary, replica and three Sentinels (tests/servers.py), two `manage.py rqworker`
with REDIS_SENTINELS, the emulator answering at once. This process creates a job every 50 ms through the same
service the API uses, its own settings pointed at the Sentinels. A job counts as finished on the new primary
when it was started (claimed by a worker) after the kill: the old primary was dead by then, so the delivery came
from the new one. Every job created, before, during and after the switch, must finish.

Uses the bench database (`scriptripper_bench`). `run(small)` returns the figures; "rows" is bench/run.py's row.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

BOUND = 2.0
DOWN_AFTER_MS = 1000
SUBMIT_EVERY_S = 0.05


def _first_finished_after(ids: list, moment: float) -> float | None:
    """Epoch seconds at which the first of these jobs started after `moment` finished, if one has."""
    from django.db.models import Min

    from jobs.models import Job

    first = (Job.objects.filter(id__in=ids, status=Job.Status.FINISHED,
                                started_at__gt=datetime.fromtimestamp(moment, UTC))
             .aggregate(first=Min("finished_at"))["first"])
    return first.timestamp() if first else None


def run(small: bool = False) -> dict:
    from django.test.utils import override_settings

    from tests.servers import RedisSentinelGroup

    with common.emulator_process(0.0) as emulator, tempfile.TemporaryDirectory(prefix="sr-failover-") as tmp:
        from django.apps import apps

        if not apps.ready:
            common.setup_django(emulator.url)
        group = RedisSentinelGroup(Path(tmp), master="sr-bench", down_after_ms=DOWN_AFTER_MS).start()
        workers = []
        try:
            with override_settings(**group.project_settings()):
                from jobs.models import Job

                common.reset_state()
                user = common.bench_user()
                text = common.sample_text(200)
                # RECONCILE_INTERVAL_SECONDS short: the jobs created while no primary answered are enqueued by
                # the next pass (they are not the measure, but each must finish).
                env = common.base_env(emulator.url, **group.env(), RECONCILE_INTERVAL_SECONDS="1")
                workers = common.start_workers(2, env)
                ids: list = []

                def submit() -> None:
                    ids.extend(common.submit_jobs(user, 1, text=text, queue="default"))
                    time.sleep(SUBMIT_EVERY_S)

                # A steady flow first, finished by both workers (started: a job is claimed from the old primary).
                common.wait_final([*common.submit_jobs(user, 1, text=text, queue="default")], timeout=120)
                warm_until = time.monotonic() + 2.0
                while time.monotonic() < warm_until:
                    submit()
                killed_at = group.kill_primary()
                promoted_at = finished_at = None
                give_up = time.monotonic() + 120
                while finished_at is None and time.monotonic() < give_up:
                    submit()
                    if promoted_at is None and group.primary() == group.replica_port:
                        promoted_at = time.time()
                    finished_at = _first_finished_after(ids, killed_at)
                if finished_at is None:
                    raise RuntimeError("no job finished on the new primary within 120 s")
                common.wait_final(ids, timeout=300)
                lost = Job.objects.filter(id__in=ids).exclude(status=Job.Status.FINISHED).count()
                during = Job.objects.filter(id__in=ids, created_at__gt=datetime.fromtimestamp(killed_at, UTC),
                                            created_at__lt=datetime.fromtimestamp(promoted_at or finished_at, UTC)
                                            ).count()
            times = group.failover_times()
        finally:
            for worker in workers:
                common.stop(worker)
            group.stop()
    value = finished_at - killed_at
    baseline = times.down_after_s + times.failover_s
    figures = {
        "case": "failover", "small": small, "down_after_ms": DOWN_AFTER_MS, "jobs": len(ids), "jobs_not_finished": lost,
        "created_while_switching": during, "first_finished_after_kill_s": round(value, 3),
        "sdown_after_kill_s": round(times.sdown - killed_at, 3), "failover_s": round(times.failover_s, 3),
        "promotion_seen_after_kill_s": round(promoted_at - killed_at, 3) if promoted_at else None,
        "sentinels_own_s": round(baseline, 3),
    }
    ratio = value / baseline
    figures["ok"] = ratio <= BOUND and lost == 0
    figures["rows"] = [{
        "case": "failover", "measure": "s from the primary's SIGKILL to the first job finished on the new primary, "
        "vs the Sentinels' down-after-milliseconds + failover (their logs)", "value": value, "baseline": baseline,
        "ratio": ratio, "bound": f"≤ {BOUND}", "ok": figures["ok"], "unit": "s",
        "notes": f"down-after {DOWN_AFTER_MS} ms, failover {times.failover_s:.2f} s (+sdown to +switch-master; "
                 f"the leader's +try-failover to the switch {times.switch_master - times.try_failover:.2f} s), "
                 f"+sdown {times.sdown - killed_at:.2f} s after the kill; 2 workers, a job every "
                 f"{SUBMIT_EVERY_S * 1000:.0f} ms: {len(ids)} jobs ({during} created while the primary was away), "
                 f"{lost} not finished",
    }]
    return figures


if __name__ == "__main__":
    sys.exit(common.module_main(run, __doc__, "the same case"))
