#!/usr/bin/env python
"""Fan-out: a job of 8 tasks against a job of 1 task, through the real path.

    python bench/fanout.py            # 1 s emulator latency, every provider, 3 rounds
    python bench/fanout.py --small    # 0.2 s latency, OpenAI only (seconds; CI)

The path is the production one: jobs created by the same service the API calls
(job_create: a row in PostgreSQL, enqueued on commit on Redis), run by a
`manage.py rqworker` subprocess (the forking ScriptRipperWorker, started once and
warmed up so its start-up is not measured), calling the provider SDKs over HTTP
to the emulator (a subprocess), results written back to PostgreSQL. Wall time is
from submission until the job row is final (PostgreSQL polled every 50 ms).

The tasks of a job run concurrently (TASK_CONCURRENCY, default 8), so the 8-task
job should take about as long as the 1-task job. Bound: median(8 tasks) /
median(1 task) <= 1.3, per provider, both measured in the same run.

Uses the bench database (`scriptripper_bench`, created and migrated) and Redis db 12.
`run(small)` returns the figures as a dict (bench/run.py calls it); its "rows" are
the per-provider results in bench/run.py's row shape.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

BOUND = 1.3
FANOUT = 8
MODELS = (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"))


def _configure(emulator_url: str) -> None:
    """Point this process at the bench database and the emulator, whether or not Django is set up yet."""
    from django.apps import apps

    if not apps.ready:
        common.setup_django(emulator_url)
    from django.conf import settings

    settings.RESULT_REUSE_TTL_SECONDS = 0  # every job really runs its tasks


def _wait_worker(timeout: float = 60) -> None:
    from rq import Worker

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if Worker.all(connection=common.redis()):
            return
        time.sleep(0.05)
    raise TimeoutError("the rqworker did not register")


def _one_job(user, *, tasks: int, provider: str, model: str, text: str) -> dict:
    from jobs.models import Job

    prompts = {f"q{i}": f"Question {i}: what does the transcript say about point {i}?" for i in range(tasks)}
    t0 = time.monotonic()
    [job_id] = common.submit_jobs(user, 1, text=text, tasks=prompts, provider=provider, model=model)
    wall = common.wait_final([job_id], timeout=120)
    job = Job.objects.get(id=job_id)
    done = job.tasks.filter(status="succeeded").count()
    return {
        "wall_s": wall,
        "run_s": (job.finished_at - job.started_at).total_seconds() if job.started_at and job.finished_at else None,
        "status": job.status,
        "succeeded": done,
        "submit_s": time.monotonic() - t0 - wall,
    }


def run(small: bool = False) -> dict:
    latency = 0.2 if small else 1.0
    rounds = 1 if small else 3
    models = MODELS[:1] if small else MODELS
    figures: dict = {"case": "fanout", "small": small, "emulator_latency_s": latency, "tasks": FANOUT,
                     "rounds": rounds, "bound_ratio": BOUND, "providers": {}}
    with common.emulator_process(latency=latency) as emulator:
        _configure(emulator.url)
        from django.conf import settings

        common.reset_state()
        user = common.bench_user()
        text = common.sample_text(300)
        env = common.base_env(emulator.url)
        [worker] = common.start_workers(1, env)
        try:
            _wait_worker()
            figures["task_concurrency"] = settings.TASK_CONCURRENCY
            for provider, model in models:
                _one_job(user, tasks=1, provider=provider, model=model, text=text)  # warm-up: imports, pools
                one, many, in_flight = [], [], []
                for _ in range(rounds):
                    # Alternating, so drift on a shared machine hits both sides alike.
                    one.append(_one_job(user, tasks=1, provider=provider, model=model, text=text))
                    emulator.reset()
                    emulator.configure(max_recorded=0, latency=latency)
                    many.append(_one_job(user, tasks=FANOUT, provider=provider, model=model, text=text))
                    in_flight.append(emulator.stats()["in_flight_max"])
                one_s = statistics.median(r["wall_s"] for r in one)
                many_s = statistics.median(r["wall_s"] for r in many)
                ratio = many_s / one_s
                all_ok = all(r["status"] == "finished" for r in one + many) and \
                    all(r["succeeded"] == FANOUT for r in many)
                figures["providers"][f"{provider}/{model}"] = {
                    "one_task_wall_s": round(one_s, 3),
                    "eight_tasks_wall_s": round(many_s, 3),
                    "ratio": round(ratio, 3),
                    "sequential_estimate_s": round(FANOUT * one_s, 3),
                    "one_task_walls_s": [round(r["wall_s"], 3) for r in one],
                    "eight_tasks_walls_s": [round(r["wall_s"], 3) for r in many],
                    "eight_tasks_worker_run_s": [round(r["run_s"], 3) for r in many if r["run_s"] is not None],
                    "emulator_in_flight_max": max(in_flight),
                    "ok": ratio <= BOUND and all_ok,
                }
        finally:
            common.stop(worker)
    # The same figures as bench/run.py's table rows (case, measure, value, baseline, ratio, bound, ok).
    return common.provider_rows(figures, "fanout", BOUND, lambda name, p: {
        "measure": f"{name}: 8-task job wall / 1-task job wall", "value": p["eight_tasks_wall_s"],
        "baseline": p["one_task_wall_s"], "ratio": p["ratio"],
        "notes": f"emulator {latency} s a call; one after another the 8 tasks would take {p['sequential_estimate_s']} s",
    })


if __name__ == "__main__":
    sys.exit(common.module_main(run, __doc__, "0.2 s latency, one provider"))
