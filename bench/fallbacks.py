#!/usr/bin/env python
"""A provider down, a fallback chain up: 20 jobs of three tasks whose model (openai/gpt-4o-mini) answers only 503,
with anthropic/claude-haiku-4-5 as their fallback at 1 s a call, against the same jobs sent straight to the
fallback at the same latency. Two `rqworker` processes, the emulator a subprocess.

    python bench/fallbacks.py            # 20 jobs x 3 tasks
    python bench/fallbacks.py --small    # 4 jobs x 3 tasks (seconds; CI)

Measured: the time until every job is final, chain against straight (bound 1.5: a task leaves its failing model
as soon as the circuit opens, its first try and its wait for the fallback the only extra), and the requests that
reached the failed model after its circuit opened, per cooldown (bound 1: its probes). The circuit settings are
the default threshold (CIRCUIT_FAILURE_THRESHOLD=5) with a short cooldown (CIRCUIT_COOLDOWN_SECONDS=1, not
doubling), and two workers of four slots, so that jobs keep coming while the circuit is open and its probes fall
within the run; the retry settings are the defaults.

`run(small)` returns the figures as a dict (bench/run.py calls it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

PRIMARY = ("openai", "gpt-4o-mini")
FALLBACK = ("anthropic", "claude-haiku-4-5")
LATENCY_S = 1.0
THRESHOLD, COOLDOWN_S = 5, 1.0
# Jobs a worker holds at once: the 20 jobs flow through the two workers in waves over a few seconds, so that tasks
# keep coming to the failed model while its circuit is open (the probes), in both rounds alike.
SLOTS = 4
TASKS = {"summary": "Provide a brief summary", "actions": "List the action items with owners",
         "decisions": "List the decisions made"}
TIME_BOUND, PROBE_BOUND = 1.5, 1.0


def _submit(user, count: int, *, provider: str, model: str, chain: list[dict], text: str) -> list:
    from analysis.engine.planning import TaskSpec
    from jobs.services import JobRequest, job_create

    return [job_create(owner=user, request=JobRequest(
        provider=provider, model=model, transcript=text, queue="default", reuse_results=False, fallback_models=chain,
        tasks=[TaskSpec(name=n, prompt=p) for n, p in TASKS.items()])).id for _ in range(count)]


def _round(user, emulator, env: dict, jobs: int, *, chain: bool, text: str) -> dict:
    """One round on fresh workers and a fresh Redis: the seconds until every job is final, and what the
    emulator and the health store saw."""
    from jobs.models import Job, Task

    common.reset_state()
    emulator.reset()
    emulator.configure(max_recorded=5000)
    emulator.add_faults([{"kind": "status", "status": 503, "provider": PRIMARY[0], "model": PRIMARY[1], "times": -1},
                         {"kind": "delay", "seconds": LATENCY_S, "provider": FALLBACK[0], "model": FALLBACK[1],
                          "times": -1}])
    procs = common.start_workers(2, env)
    try:
        common.wait_workers(2)
        provider, model = PRIMARY if chain else FALLBACK
        members = [{"provider": FALLBACK[0], "model": FALLBACK[1]}] if chain else []
        t0 = time.time()
        ids = _submit(user, jobs, provider=provider, model=model, chain=members, text=text)
        elapsed = common.wait_final(ids, poll=0.02)
        t_end = time.time()
    finally:
        for proc in procs:
            common.stop(proc)
    statuses = set(Job.objects.filter(id__in=ids).values_list("status", flat=True))
    answered = set(Task.objects.filter(job_id__in=ids).values_list("provider", "model"))
    opened = common.redis().hget(f"scriptripper:health:{PRIMARY[0]}:{PRIMARY[1]}", "opened_at")
    opened_at = float(opened) if opened else None
    primary = sorted(r["time"] for r in emulator.requests(PRIMARY[0]) if r["model"] == PRIMARY[1])
    return {"elapsed": elapsed, "t0": t0, "t_end": t_end, "statuses": statuses, "answered": answered,
            "opened_at": opened_at, "primary_times": primary}


def run(small: bool = False) -> dict:
    jobs = 4 if small else 20
    text = common.sample_text(200)
    figures: dict = {"case": "fallbacks", "small": small, "jobs": jobs, "tasks_per_job": len(TASKS),
                     "primary": "/".join(PRIMARY), "fallback": "/".join(FALLBACK), "fallback_latency_s": LATENCY_S,
                     "circuit_failure_threshold": THRESHOLD, "circuit_cooldown_s": COOLDOWN_S}
    user = common.bench_user()
    with common.emulator_process(0.0) as emulator:
        env = common.base_env(emulator.url, CIRCUIT_FAILURE_THRESHOLD=str(THRESHOLD),
                              CIRCUIT_COOLDOWN_SECONDS=str(COOLDOWN_S), CIRCUIT_COOLDOWN_MAX_SECONDS=str(COOLDOWN_S),
                              WORKER_CONCURRENCY=str(SLOTS), WORKER_HIGH_RESERVED_SLOTS="0")
        straight = _round(user, emulator, env, jobs, chain=False, text=text)
        chained = _round(user, emulator, env, jobs, chain=True, text=text)
    ok_runs = straight["statuses"] == chained["statuses"] == {"finished"} and chained["answered"] == {FALLBACK}
    # Requests let through just before the circuit opened may arrive a moment after it; no probe is due before a
    # cooldown has passed.
    opened_at = chained["opened_at"]
    after = [t for t in chained["primary_times"] if opened_at is not None and t > opened_at + 0.9 * COOLDOWN_S]
    open_s = max(chained["t_end"] - (opened_at or chained["t_end"]), 0.0)
    cooldowns = max(1, -(-open_s // COOLDOWN_S))  # the cooldowns begun while it was open
    probes_per_cooldown = len(after) / cooldowns
    ratio = chained["elapsed"] / straight["elapsed"]
    figures.update({
        "straight_s": round(straight["elapsed"], 3), "chain_s": round(chained["elapsed"], 3),
        "time_ratio": round(ratio, 3), "primary_requests": len(chained["primary_times"]),
        "primary_requests_after_open": len(after), "open_s": round(open_s, 3), "cooldowns": cooldowns,
        "probes_per_cooldown": round(probes_per_cooldown, 3), "circuit_opened": opened_at is not None,
        "all_finished_on_the_fallback": ok_runs,
    })
    figures["ok"] = (ok_runs and opened_at is not None and ratio <= TIME_BOUND
                     and probes_per_cooldown <= PROBE_BOUND)
    settings_note = (f"{jobs} jobs x {len(TASKS)} tasks, 2 workers of {SLOTS} slots, primary {'/'.join(PRIMARY)} answering only 503, "
                     f"fallback {'/'.join(FALLBACK)} at {LATENCY_S:g} s a call; CIRCUIT_FAILURE_THRESHOLD={THRESHOLD}, "
                     f"CIRCUIT_COOLDOWN_SECONDS={COOLDOWN_S:g} (max the same), retry settings default")
    figures["rows"] = [
        {"case": "fallbacks", "measure": f"time of {jobs} jobs x {len(TASKS)} tasks, primary down (503) with a "
                                         f"fallback chain vs sent straight to the fallback",
         "value": chained["elapsed"], "baseline": straight["elapsed"], "ratio": ratio, "bound": f"≤ {TIME_BOUND}",
         "ok": ok_runs and ratio <= TIME_BOUND, "unit": "s", "notes": settings_note},
        {"case": "fallbacks", "measure": "requests reaching the failed primary after its circuit opened, per cooldown",
         "value": float(len(after)), "baseline": float(cooldowns), "ratio": probes_per_cooldown,
         "bound": f"≤ {PROBE_BOUND}", "ok": opened_at is not None and probes_per_cooldown <= PROBE_BOUND,
         "unit": "requests",
         "notes": (f"{len(chained['primary_times'])} requests reached the primary in all (before it opened, the "
                   f"first tries); open for {open_s:.1f} s, {int(cooldowns)} cooldown(s) of {COOLDOWN_S:g} s")},
    ]
    return figures


def main() -> int:
    common.setup_django()
    return common.module_main(run, __doc__, "4 jobs x 3 tasks")


if __name__ == "__main__":
    sys.exit(main())
