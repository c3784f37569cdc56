"""Soak: 200 jobs, 2 workers, a worker SIGKILLed every few seconds (and restarted), Redis flushed once.

    .venv/bin/python bench/soak.py [--jobs 200] [--workers 2] [--kill-every 4] [--latency 0.2]

Runs against its own database (`scriptripper_bench`, created and migrated) and Redis
database 11, with the provider emulator as a subprocess, and the workers as the plain
`python manage.py rqworker high default low` with the production defaults for the lease,
heartbeat and reconcile interval (override with --lease / --interval / --heartbeat).

Kills rotate through the three ways a worker dies: the worker and its horse together
(machine gone: recovered by another worker's reconciler after the lease), the horse
alone (recovered at once by its worker) and the worker alone (its orphaned horse
finishes the job). Reported:

- jobs lost (rows gone or never final and held nowhere) and stuck (not final at the end): must be 0;
- tasks with a stored result sent again (a provider request for a task after its result was stored): must be 0;
- calls lost in flight (paid, answer never stored: counted in Job.lost_calls) and the extra sends seen by the
  provider (must equal the lost calls);
- the longest time from a kill to the job it interrupted finishing elsewhere (must be at most 90 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TEXT = ("Alice: We should ship the new onboarding flow next week.\n"
        "Bob: Agreed, but the billing page needs a review first.\n"
        "Alice: Then let's review it on Monday and ship on Thursday.\n")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def rq_worker_name(pid: int) -> str | None:
    r = common.redis()
    for key in r.smembers("rq:workers"):
        data = r.hgetall(key)
        if data.get(b"pid") and int(data[b"pid"]) == pid:
            return key.decode().split(":", 2)[-1]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--lease", default="30")
    parser.add_argument("--interval", default="30")
    parser.add_argument("--heartbeat", default="5")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    random.seed(args.seed)

    with common.emulator_process(latency=args.latency) as emulator:
        emulator.configure(max_recorded=args.jobs * args.tasks * 3)
        worker_env = {"JOB_LEASE_SECONDS": args.lease, "RECONCILE_INTERVAL_SECONDS": args.interval,
                      "JOB_HEARTBEAT_SECONDS": args.heartbeat, "TASK_CONCURRENCY": "1"}
        common.setup_django(emulator.url, **worker_env)
        from jobs.models import Job, Task

        common.reset_state()
        user = common.bench_user("soak")
        env = common.base_env(emulator.url, **worker_env)
        workers = [common.start_workers(1, env)[0] for _ in range(args.workers)]
        try:
            return run(args, env, workers, emulator, Job, Task, user)
        finally:
            for proc in workers:
                for pid in children(proc.pid):
                    os.kill(pid, signal.SIGKILL)
                if proc.poll() is None:
                    proc.kill()


def run(args, env, workers, emulator, Job, Task, user) -> int:
    time.sleep(3)  # let them register

    from analysis.engine.planning import TaskSpec
    from jobs.services import JobRequest, job_create

    ids = []
    for i in range(args.jobs):
        ids.append(str(job_create(owner=user, request=JobRequest(
            provider="openai", model="gpt-4o-mini", transcript=TEXT, reuse_results=False,
            tasks=[TaskSpec(name=f"t{k}", prompt=f"[soak-{i}-{k}] Answer question {k} about this meeting")
                   for k in range(args.tasks)])).id))
    started = time.monotonic()
    print(f"submitted {len(ids)} jobs x {args.tasks} tasks; workers: {args.workers}; "
          f"lease {args.lease} s, reconcile every {args.interval} s, heartbeat {args.heartbeat} s", flush=True)

    kills: list[dict] = []
    modes = ["both", "horse", "both", "worker"]
    flushed = False
    next_kill = time.monotonic() + args.kill_every
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        open_jobs = Job.objects.filter(id__in=ids).exclude(status__in=Job.FINAL_STATUSES).count()
        if open_jobs == 0:
            break
        if not flushed and open_jobs < args.jobs * 0.7:
            common.redis().flushdb()  # its own database only: never FLUSHALL a shared server
            flushed = True
            print(f"{time.monotonic() - started:6.1f}s FLUSHDB ({open_jobs} jobs open)", flush=True)
        if time.monotonic() >= next_kill and open_jobs > 10:
            next_kill = time.monotonic() + args.kill_every
            index = random.randrange(len(workers))
            proc = workers[index]
            horses = children(proc.pid)
            name = rq_worker_name(proc.pid)
            running = (Job.objects.filter(status="started", worker=name).values_list("id", flat=True).first()
                       if name else None)
            mode = modes[len(kills) % len(modes)]
            if not horses and mode == "horse":
                mode = "worker"
            if mode in ("both", "worker"):
                proc.kill()
            if mode in ("both", "horse"):
                for pid in horses:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            kills.append({"at": time.time(), "mode": mode, "job": str(running) if running and horses else None})
            if mode in ("both", "worker"):
                proc.wait()
                workers[index] = common.start_workers(1, env)[0]
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    for proc in workers:
        common.stop(proc)

    jobs = {str(j.id): j for j in Job.objects.filter(id__in=ids)}
    held = set()
    r = common.redis()
    for q in ("high", "default", "low"):
        held.update(x.decode() for x in r.lrange(f"rq:queue:{q}", 0, -1))
    lost = [j for j in ids if j not in jobs or (not jobs[j].is_final and j not in held)]
    stuck = [j for j in ids if j in jobs and not jobs[j].is_final]

    # What the provider saw, per task instruction, against when each result was stored.
    requests = emulator.requests()
    by_tag: dict[str, list[float]] = {}
    for rec in requests:
        body = json.dumps(rec.get("body"))
        start = body.find("[soak-")
        if start >= 0:
            tag = body[start + 1:body.find("]", start)]
            by_tag.setdefault(tag, []).append(rec["time"])
    tasks = Task.objects.filter(job_id__in=ids).select_related("job")
    resent_after_result = 0
    extra_sends = 0
    for task in tasks:
        i = ids.index(str(task.job_id))
        times = by_tag.get(f"soak-{i}-{task.name[1:]}", [])
        extra_sends += max(len(times) - 1, 0)
        if task.status == Task.Status.SUCCEEDED and task.finished_at is not None and not task.reused:
            resent_after_result += sum(1 for t in times if t > task.finished_at.timestamp() + 0.001)
    lost_calls = sum(j.lost_calls for j in jobs.values())

    # Kill → the interrupted job finishing elsewhere. A job interrupted again on the worker that
    # resumed it is measured from its last kill (and, for the record, from its first one too).
    recoveries = []
    first_kill: dict[str, float] = {}
    last_kill: dict[str, tuple[float, str]] = {}
    for kill in kills:
        if kill["job"]:
            first_kill.setdefault(kill["job"], kill["at"])
            last_kill[kill["job"]] = (kill["at"], kill["mode"])
    for job_id, (at, mode) in last_kill.items():
        job = jobs.get(job_id)
        if job and job.finished_at:
            recoveries.append((job.finished_at.timestamp() - at, mode))
    from_first = [jobs[j].finished_at.timestamp() - at for j, at in first_kill.items()
                  if j in jobs and jobs[j].finished_at]
    report = {
        "jobs": len(ids), "tasks_per_job": args.tasks, "workers": args.workers, "elapsed_s": round(elapsed, 1),
        "kills": dict(Counter(k["mode"] for k in kills)), "redis_flushed": flushed,
        "statuses": dict(Counter(j.status for j in jobs.values())),
        "attempts": dict(sorted(Counter(j.attempts for j in jobs.values()).items())),
        "jobs_lost": len(lost), "jobs_stuck": len(stuck),
        "tasks_with_stored_result_sent_again": resent_after_result,
        "calls_lost_in_flight": lost_calls, "extra_sends_seen_by_provider": extra_sends,
        "provider_requests": len(requests),
        "jobs_interrupted": len(last_kill),
        "longest_kill_to_finish_s": round(max((s for s, _ in recoveries), default=0.0), 1),
        "longest_first_kill_to_finish_s": round(max(from_first, default=0.0), 1),
        "longest_by_kill_mode_s": {mode: round(max(s for s, m in recoveries if m == mode), 1)
                                   for mode in {m for _, m in recoveries}},
    }
    print(json.dumps(report, indent=2))
    ok = (not lost and not stuck and resent_after_result == 0 and report["longest_kill_to_finish_s"] <= 90)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
