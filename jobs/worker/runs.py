"""Running one job inside a worker: claim it, run its tasks through the analysis runner, end it.

The same code runs in every worker class: a `JobSlot` carries what the run needs from its
worker (its name, its database pool, its call pool, its stop token). Only ids come from
Redis; everything else is read from PostgreSQL. Each task's outcome is stored the moment
it completes; a re-run only runs the tasks that have no result yet.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings

from accounts.services import monthly_budget_of
from analysis.analyze import ask_question, fallback_routes, run_analysis, run_config, stored_model
from analysis.clients import endpoints
from analysis.engine.catalogue import UnknownModelError
from analysis.engine.execution import CallPool, Flag, Stopped, StopToken
from analysis.engine.planning import TaskSpec
from analysis.engine.providers.base import ProviderError
from analysis.engine.runner import RunHooks, TaskOutcome
from jobs.models import Job, Task
from jobs.services import job_enqueue, task_reuse_key
from jobs.worker.dbpool import DatabasePool
from jobs.worker.lifecycle import (
    job_call_refused, job_call_started, job_claim, job_fail, job_finish, job_settle_after_run, job_status, job_tasks,
    jobs_heartbeat, jobs_run_state, task_may_start, task_outcome_save, tasks_reuse_finished,
)
from jobs.worker.provider_batch_poller import job_batch_calls, job_batch_wait
from jobs.worker.provider_limits import provider_limiter, worker_provider_health
from transcripts.retrieval import transcript_scope

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RunEnd(enum.StrEnum):
    """How a run left its job (also the RQ job's return value). Every run ends in exactly one of these;
    a run that did not write a final state itself is settled by `run_settle`, and `run_hand_over` is the
    one place that enqueues a handed-back job again."""

    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"
    # Handed back (a shutdown, a timeout, a crash of the run) and `queued` again: enqueued by run_hand_over once
    # this delivery's RQ record is closed.
    HANDED_BACK = "handed back"
    SKIPPED = "skipped"  # not claimed: another delivery had it, or it was canceled or deleted meanwhile
    WAITING = "waiting"  # a batch job's round ended: it waits for its provider batches, in no slot
    LOST = "lost"  # deleted while it ran, or taken over by another worker: nothing of it is this run's any more


# The ends after which the row is final or rests with someone else: nothing to settle.
SETTLED_ENDS = frozenset({RunEnd.FINISHED, RunEnd.FAILED, RunEnd.CANCELED, RunEnd.SKIPPED, RunEnd.WAITING})

SCOPE_GONE = "Every transcript this question was asked over has been deleted since: there is nothing to ask."

# Why a run was stopped (StopToken.reason).
STOP_CANCELED = "canceled"
STOP_TIMEOUT = "timeout"
STOP_SHUTDOWN = "shutdown"
STOP_TAKEN_OVER = "taken over"


def run_end_of(status: str | None) -> RunEnd:
    return {Job.Status.FINISHED: RunEnd.FINISHED, Job.Status.FAILED: RunEnd.FAILED,
            Job.Status.CANCELED: RunEnd.CANCELED, Job.Status.QUEUED: RunEnd.HANDED_BACK}.get(status, RunEnd.LOST)


def run_settle(*, job_id: str, worker: str, reason: str, counts: bool = True,
               db: Callable[[Callable[[], T]], T]) -> RunEnd:
    """End a run that left its job without a final state of its own (stopped, shut down, crashed, its work
    horse killed): the row is handed on (queued again, or failed after JOB_MAX_ATTEMPTS, or canceled as asked)
    and the calls still counted in flight become lost calls (jobs.worker.lifecycle.job_settle_after_run).
    `counts`: False for a graceful hand-back, which does not count against the attempt limit. `db` runs a
    statement the way the caller's worker does (its pool, or db_retry in a forking worker's parent)."""
    status = db(lambda: job_settle_after_run(job_id=job_id, worker=worker, reason=reason, counts=counts))
    if status is None:  # not this run's any more, or never claimed by it
        status = db(lambda: job_status(job_id=job_id))
    return run_end_of(status)


def run_hand_over(end: RunEnd, *, job_id: str, close_rq_record: Callable[[], None],
                  db: Callable[[Callable[[], T]], T]) -> None:
    """After a run, whatever its end: close RQ's record of this delivery, then, and only then, enqueue a
    handed-back job again (the new delivery reuses the job id: enqueued before the old record is closed, RQ
    would count it as still running)."""
    close_rq_record()
    if end is RunEnd.HANDED_BACK:
        db(lambda: job_enqueue(job_id=job_id, at_front=True))


class OneShot:
    """True for the first caller of take(), False for every other, whichever threads ask."""

    def __init__(self, armed: bool) -> None:
        self._armed = armed
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            return armed


@dataclass(eq=False)
class JobSlot:
    """One job held by a worker, from its take to its end."""

    job_id: str
    worker: str
    db: DatabasePool
    calls: CallPool
    timeout: float  # seconds from the take (the RQ job's timeout, JOB_TIMEOUT)
    stop: StopToken = field(default_factory=StopToken)
    # Shutdown asked: start no new task; the calls in flight may finish (they are paid for).
    draining: Flag = field(default_factory=Flag)
    job: Job | None = None  # the row as claimed
    taken_at: float = field(default_factory=time.monotonic)
    _calls: dict[str, int] = field(default_factory=dict)  # task → calls started, answer not stored yet
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def deadline(self) -> float:
        return self.taken_at + self.timeout

    def call_started(self, task: str) -> None:
        """Count a call about to go out; a stopped run sends none (Stopped). Under the lock that
        shut_down holds, so a call either counts as in flight or is never sent."""
        with self._lock:
            self.stop.check()
            self._calls[task] = self._calls.get(task, 0) + 1

    def call_refused(self, task: str) -> None:
        """A call of the task came back with an error status: it is no longer in flight."""
        with self._lock:
            if self._calls.get(task):
                self._calls[task] -= 1

    def calls_of(self, task: str) -> int:
        with self._lock:
            return self._calls.get(task, 0)

    def db_run(self, fn: Callable[[], T]) -> T:
        """fn() on the worker's database pool for this run: abandoned when the run is stopped, and a
        database outage is waited out until the run's deadline (an answer paid for is not dropped)."""
        return self.db.run(fn, stop=self.stop, deadline=self.deadline)

    def calls_stored(self, task: str) -> None:
        with self._lock:
            self._calls.pop(task, None)

    def shut_down(self, grace: float) -> None:
        """The worker is shutting down: start no new task, and stop the run at once when no call is in
        flight, else after `grace` seconds (its calls may still answer and be stored meanwhile)."""
        with self._lock:
            self.draining.set()
            if grace <= 0 or not any(self._calls.values()):
                self.stop.stop(STOP_SHUTDOWN)
                return
        timer = threading.Timer(grace, self.stop.stop, args=(STOP_SHUTDOWN,))
        timer.daemon = True
        timer.start()


def job_run(slot: JobSlot) -> RunEnd:
    """Run the job this slot holds, to an end that leaves no row `started` by this run."""
    # Not abandoned on a stop (unlike the reads): a claim left to run later would leave the row
    # `started` with no run behind it. The tasks to run come with it, on the same database thread.
    claimed = slot.db.run(lambda: _claim(slot), deadline=slot.deadline)
    if claimed is None:
        logger.info("job %s is not queued (already claimed, canceled or deleted); skipping", slot.job_id)
        return RunEnd.SKIPPED
    slot.job, tasks = claimed
    try:
        return _run_claimed(slot, slot.job, tasks)
    except Stopped:
        return _end_stopped(slot)


def _claim(slot: JobSlot) -> tuple[Job, list[Task]] | None:
    job = job_claim(job_id=slot.job_id, worker=slot.worker)
    if job is None:
        return None
    return job, job_tasks(job=job)


_STOP_REASONS = {
    STOP_TIMEOUT: "it ran past its timeout ({timeout:g} s, JOB_TIMEOUT).",
    STOP_SHUTDOWN: "its worker was shut down.",
}


def _end_stopped(slot: JobSlot) -> RunEnd:
    """Settle a stopped run: a cancel left the row final already (its calls in flight become lost
    calls); a timeout or a shutdown hands the job on. The stop token is set, so these writes wait
    on the database without it, for a bounded time."""
    reason = slot.stop.reason
    text = _STOP_REASONS.get(reason, "its run was stopped ({reason}).").format(timeout=slot.timeout, reason=reason)
    end = run_settle(job_id=slot.job_id, worker=slot.worker, reason=text, counts=reason != STOP_SHUTDOWN,
                     db=lambda fn: slot.db.run(fn, deadline=time.monotonic() + 30))
    logger.info("job %s stopped (%s)", slot.job_id, reason)
    return end


def _run_claimed(slot: JobSlot, job: Job, tasks: list[Task]) -> RunEnd:
    db, stop = slot.db_run, slot.stop
    # Every task's (status, error) as this run leaves it, in order: what job_finish decides on.
    outcomes = {task.name: (task.status, task.error) for task in tasks}
    # Only tasks without an outcome run: a task with a stored result is never sent again
    # (a failed one runs again only when the job is retried, which makes it pending).
    pending = [task for task in tasks if task.status == Task.Status.PENDING]
    if job.reuse_results and settings.RESULT_REUSE_TTL_SECONDS > 0:
        remaining = db(lambda: tasks_reuse_finished(job=job, pending=pending))
        for task in pending:
            if task not in remaining:
                outcomes[task.name] = (Task.Status.SUCCEEDED, "")
        pending = remaining
    try:
        model = stored_model(job.provider, job.model)
        config = run_config(provider=job.provider, model=model, system_prompt=job.system_prompt,
                            max_output_tokens=job.params.get("max_output_tokens"),
                            temperature=job.params.get("temperature"), processing=job.processing,
                            fallback=job.fallback)
    except (UnknownModelError, ValueError) as exc:
        message = str(exc)
        db(lambda: job_fail(job=job, message=message))
        return RunEnd.FAILED
    tasks_by_name = {task.name: task for task in pending}
    # The chain (analysis/analyze.py): each model's client and configuration, after the job's own.
    chain = fallback_routes(chain=job.fallback_models, config=config) if job.fallback_models else []
    # The models whose dated price a task's provenance records, by (provider, model): not an endpoint's own prices
    # nor an unlisted model (priced at 0, marked unknown).
    priced_models = {(c.provider, c.model.name): c.model for c in (config, *(route.config for route in chain))
                     if c.provider not in endpoints() and c.model.listed}
    check_budget = monthly_budget_of(job.owner) is not None  # the owner came with the claim: no query
    # The row as read at the claim serves the first task: no read before it when nothing can refuse it.
    claimed_state_fresh = OneShot(not job.cancel_requested and job.max_cost is None and not check_budget)

    def should_start(name: str) -> bool:
        if slot.draining.is_set():
            return False  # the worker is shutting down: hand the rest back
        if claimed_state_fresh.take():
            return True
        return db(lambda: task_may_start(job=job, check_budget=check_budget))

    def on_call(name: str) -> None:
        slot.call_started(name)
        # Not abandoned either: a count left to land after the run was settled would be a phantom lost call.
        slot.db.run(lambda: job_call_started(job=job), deadline=slot.deadline)

    def on_call_refused(name: str) -> None:
        slot.call_refused(name)
        slot.db.run(lambda: job_call_refused(job=job), deadline=slot.deadline)

    def on_done(outcome: TaskOutcome) -> None:
        if outcome.skipped:
            return
        started = slot.calls_of(outcome.name)
        task = tasks_by_name[outcome.name]
        # An answer of another model of the chain is stored under that model's reuse key: reused only for it.
        reuse_key = (task_reuse_key(job=job, prompt=task.prompt, provider=outcome.provider, model=outcome.model)
                     if outcome.ok and (outcome.provider, outcome.model) != (job.provider, job.model) else None)
        priced_model = priced_models.get((outcome.provider, outcome.model))
        # The answer is paid for: it waits out a database outage until the job's own deadline.
        if db(lambda: task_outcome_save(job=job, outcome=outcome, calls_started=started, task_id=task.id,
                                        priced_model=priced_model, reuse_key=reuse_key)):
            outcomes[outcome.name] = ((Task.Status.SUCCEEDED, "") if outcome.ok else
                                      (Task.Status.FAILED, outcome.error))
        slot.calls_stored(outcome.name)

    hooks = RunHooks(should_start=should_start, on_done=on_done, on_call=on_call, on_call_refused=on_call_refused)
    specs = [TaskSpec(name=task.name, prompt=task.prompt) for task in pending]
    # Batch mode (jobs/worker/provider_batch_poller.py): this round answers what the job's batches answered and registers the rest.
    batch = db(lambda: job_batch_calls(job=job)) if job.processing == "batch" and pending else None
    try:
        if job.kind == Job.Kind.ASK:
            if specs:
                # The meetings as they are now, read on this run's database threads (retrieval included).
                scope = transcript_scope(owner=job.owner, transcript_ids=job.scope["transcripts"], run=db)
                if not scope.ids:
                    db(lambda: job_fail(job=job, message=SCOPE_GONE))
                    return RunEnd.FAILED
                ask_question(scope=scope, config=config, spec=specs[0], limiter=provider_limiter(holder=slot.worker),
                             hooks=hooks, call_pool=slot.calls, stop=stop, fallbacks=chain,
                             health=worker_provider_health())
        else:
            run_analysis(transcript=job.transcript, config=config, tasks=specs,
                         limiter=provider_limiter(holder=slot.worker), hooks=hooks, call_pool=slot.calls, stop=stop,
                         batch=batch, fallbacks=chain, health=worker_provider_health())
    except ProviderError as exc:  # e.g. the provider's key was removed since submission
        message = exc.message
        db(lambda: job_fail(job=job, message=message))
        return RunEnd.FAILED
    stop.check()  # stopped while it ran: the abandoned tasks stored nothing
    if batch is not None and batch.waiting:
        # The slot is given back now; the batch poller delivers the job again when its batches answer.
        return RunEnd.WAITING if db(lambda: job_batch_wait(job=job, calls=batch)) else RunEnd.LOST
    if slot.draining.is_set() and db(lambda: job.tasks.filter(status=Task.Status.PENDING).exists()):
        return run_settle(job_id=str(job.id), worker=slot.worker, counts=False, reason="its worker was shut down.",
                          db=db)
    return run_end_of(db(lambda: job_finish(job=job, outcomes=list(outcomes.values()))))


class SlotMonitor:
    """One loop for every job a process runs: deadlines, cancel flags (read at least once a
    second, from PostgreSQL, so a cancel reaches the run from any API host whatever Redis does),
    and the jobs' leases (heartbeat_at every JOB_HEARTBEAT_SECONDS, one statement for all)."""

    def __init__(self, *, db: DatabasePool, slots: Callable[[], list[JobSlot]],
                 on_tick: Callable[[], None] | None = None) -> None:
        self.db = db
        self.slots = slots
        self.on_tick = on_tick
        self.interval = min(0.5, settings.JOB_HEARTBEAT_SECONDS)
        self._next_beat = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="slot-monitor", daemon=True)

    def start(self) -> SlotMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # PostgreSQL or Redis away: the next tick tries again
                logger.warning("slot monitor: %s: %s", type(exc).__name__, str(exc).strip()[:160])

    def tick(self) -> None:
        now = time.monotonic()
        running = [slot for slot in self.slots() if not slot.stop.stopped]
        for slot in running:
            if now >= slot.deadline:
                slot.stop.stop(STOP_TIMEOUT)
        claimed = {slot.job_id: slot for slot in running if slot.job is not None and not slot.stop.stopped}
        try:
            if claimed:
                self._check_runs(claimed, beat=now >= self._next_beat)
                if now >= self._next_beat:
                    self._next_beat = now + settings.JOB_HEARTBEAT_SECONDS
        finally:
            if self.on_tick is not None:
                self.on_tick()

    def _check_runs(self, claimed: dict[str, JobSlot], *, beat: bool) -> None:
        states = self.db.run(lambda: jobs_run_state(job_ids=list(claimed)), tries=1)
        for job_id, slot in claimed.items():
            row = states.get(job_id)
            if row is None or row["cancel_requested"]:
                slot.stop.stop(STOP_CANCELED)  # deleted jobs are canceled first (jobs.services.job_delete)
            elif row["status"] != Job.Status.STARTED or row["attempts"] != slot.job.attempts:
                slot.stop.stop(STOP_TAKEN_OVER)
        if beat:
            attempts = {job_id: slot.job.attempts for job_id, slot in claimed.items() if not slot.stop.stopped}
            self.db.run(lambda: jobs_heartbeat(attempts=attempts), tries=1)
