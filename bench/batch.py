#!/usr/bin/env python
"""Batch processing against standard: 200 `low` jobs of three tasks per model, run by two `rqworker`
processes against the emulator (a subprocess), once standard and once in batch mode.

    python bench/batch.py            # 200 jobs per model and mode
    python bench/batch.py --small    # 5 jobs of anthropic/claude-haiku-4-5 only (seconds; CI)

Measured per model: the total cost of the batch run against the standard run of the very same calls (the
emulator reports half of every prompt as a cache read, so the cache-read rate counts): 0.5 where every token
kind has a half-price batch rate (Anthropic), above it where a kind keeps its standard rate in batches
(OpenAI's gpt-4o-mini and Gemini 2.5 Flash bill cache reads at the standard rate); and the worker slots busy
while every batch job waits for its results (sampled from the workers' `slots_busy` in Redis): 0.

`run(small)` returns the figures as a dict (bench/run.py calls it).
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

MODELS = [("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o-mini"), ("gemini", "gemini-2.5-flash")]
TASKS = {"summary": "Provide a brief summary", "actions": "List the action items with owners",
         "decisions": "List the decisions made"}
WORKERS = 2
HALF_PRICE = {"anthropic"}  # every token kind of claude-haiku-4-5 has a batch rate of half the standard one


def _submit(user, count: int, *, provider: str, model: str, processing: str, text: str) -> list:
    from analysis.engine.runner import TaskSpec
    from jobs.services import JobRequest, job_create

    return [job_create(owner=user, request=JobRequest(
        provider=provider, model=model, transcript=text, queue="low", reuse_results=False, processing=processing,
        tasks=[TaskSpec(name=n, prompt=p) for n, p in TASKS.items()])).id for _ in range(count)]


def _slots_busy_now(timeout: float = 30) -> int:
    """Every worker's busy slots as published after this moment: each worker republishes `slots_busy` with its
    heartbeat (every JOB_HEARTBEAT_SECONDS), so a value read before its next beat may predate the moment."""
    from rq import Worker

    redis = common.redis()
    workers = Worker.all(connection=redis)
    before = {w.key: redis.hget(w.key, "last_heartbeat") for w in workers}
    deadline = time.monotonic() + timeout
    busy = {}
    while len(busy) < len(workers) and time.monotonic() < deadline:
        for worker in workers:
            if worker.key not in busy and redis.hget(worker.key, "last_heartbeat") != before[worker.key]:
                busy[worker.key] = int(redis.hget(worker.key, "slots_busy") or 0)
        time.sleep(0.05)
    if len(busy) < len(workers):
        raise TimeoutError("a worker published no heartbeat")
    return sum(busy.values())


def _total(ids) -> Decimal:
    from django.db.models import Sum

    from jobs.models import Job

    return Job.objects.filter(id__in=ids).aggregate(total=Sum("total_cost"))["total"] or Decimal(0)


def _compare(user, emulator, provider: str, model: str, jobs: int, text: str) -> dict:
    """The same jobs standard, then in batch mode (the batches end when told, so that the wait can be watched)."""
    from emulator.batches import complete_batches, configure_batches
    from jobs.models import Job, ProviderBatch

    standard = _submit(user, jobs, provider=provider, model=model, processing="standard", text=text)
    common.wait_final(standard, timeout=900)
    configure_batches(emulator.url, completion_delay=3600)
    t0 = time.monotonic()
    batch = _submit(user, jobs, provider=provider, model=model, processing="batch", text=text)
    deadline = time.monotonic() + 600
    while (Job.objects.filter(id__in=batch, awaiting_batch=True).count() < jobs
           or ProviderBatch.objects.filter(model=model, status="submitting").exists()
           or Job.objects.filter(id__in=batch, batch_requests__status="pending").exists()):
        if time.monotonic() > deadline:
            raise TimeoutError("batch jobs did not all reach their wait with their calls submitted")
        time.sleep(0.1)
    # Every worker's busy slots, as published after all the jobs waited, three times over.
    samples = [_slots_busy_now() for _ in range(3)]
    waiting = Job.objects.filter(id__in=batch, status="started", awaiting_batch=True, worker="").count()
    batches = ProviderBatch.objects.filter(model=model).count()
    complete_batches(emulator.url)
    configure_batches(emulator.url, completion_delay=0)
    common.wait_final(batch, timeout=900)
    cost_standard, cost_batch = _total(standard), _total(batch)
    return {"cost_standard": float(cost_standard), "cost_batch": float(cost_batch),
            "ratio": round(float(cost_batch / cost_standard), 4) if cost_standard else 0.0,
            "slots_busy_max_while_waiting": max(samples), "jobs_waiting": waiting, "provider_batches": batches,
            "batch_wall_s": round(time.monotonic() - t0, 2),
            "not_finished": Job.objects.filter(id__in=standard + batch).exclude(status="finished").count()}


def run(small: bool = False) -> dict:
    from emulator.batches import configure_batches

    jobs = 5 if small else 200
    user = common.bench_user()
    text = common.sample_text(300)
    figures: dict = {"case": "batch", "jobs": jobs, "tasks": len(TASKS), "models": {}, "rows": []}
    with common.emulator_process(0.0) as emulator:
        emulator.configure(cached_tokens=0.5, cache_write_tokens=0.1)
        env = common.base_env(emulator.url, BATCH_POLL_INTERVAL_SECONDS="0.5", JOB_HEARTBEAT_SECONDS="1")
        common.reset_state()
        procs = common.start_workers(WORKERS, env)  # the same two workers for every model
        try:
            for provider, model in MODELS[:1] if small else MODELS:  # the smoke run: the half-price model only
                figures["models"][f"{provider}/{model}"] = _compare(user, emulator, provider, model, jobs, text)
        finally:
            configure_batches(emulator.url, completion_delay=0)
            for proc in procs:
                common.stop(proc)
    for name, found in figures["models"].items():
        half = name.split("/")[0] in HALF_PRICE
        figures["rows"].append({
            "case": "batch", "measure": f"{name}: cost of {jobs} low jobs x {len(TASKS)} tasks, batch vs standard",
            "value": found["cost_batch"], "baseline": found["cost_standard"], "ratio": found["ratio"],
            "bound": "≤ 0.5001" if half else "(per model)", "unit": "USD",
            "ok": (found["ratio"] <= 0.5001 if half else True) and not found["not_finished"],
            "notes": (f"{name}: every kind at half price in batches" if half else
                      f"{name}: cache reads (half the prompt here) keep the standard rate in batches")
                     + f"; {found['provider_batches']} provider batch(es)"})
        figures["rows"].append({
            "case": "batch", "measure": f"{name}: worker slots busy while {found['jobs_waiting']} batch jobs wait",
            "value": float(found["slots_busy_max_while_waiting"]), "baseline": float(found["jobs_waiting"]),
            "ratio": found["slots_busy_max_while_waiting"] / max(1, found["jobs_waiting"]), "bound": "= 0",
            "unit": "slots", "ok": found["slots_busy_max_while_waiting"] == 0 and found["jobs_waiting"] == jobs})
    figures["ok"] = all(row["ok"] for row in figures["rows"])
    return figures


def main() -> int:
    common.setup_django()
    return common.module_main(run, __doc__, "5 jobs, one model")


if __name__ == "__main__":
    sys.exit(main())
