"""The RQ worker class used by `python manage.py rqworker high default low`.

A forking `Worker` (one work horse per job, so a running job can be stopped and
a crashed job cannot take the worker down). On top of RQ it:

- closes database connections before every fork: a connection opened by the
  worker parent and inherited by a horse is shared by two processes, the cause
  of django-rq's "SSL error" and "connection already closed" reports;
- settles the job after its horse exits, whatever way it exited (finished,
  killed, stopped by a cancel, cold shutdown): a row its horse left `started`
  goes back to `queued` (or `failed` after JOB_MAX_ATTEMPTS) at once, instead
  of waiting for a lease to expire;
- forwards a warm shutdown (SIGTERM) to the horse, which hands its job back
  after the calls in flight finish (jobs.tasks.request_handback);
- runs the reconciler (jobs.reconcile) every RECONCILE_INTERVAL_SECONDS in a
  thread of the parent, because RQ's own maintenance runs every 600 s, not
  while a horse runs, and `rqworker` starts no scheduler.
"""

from __future__ import annotations

import gc
import logging
import os
import signal

from django.db import connections
from rq.job import JobStatus
from rq.worker import Worker

from analysis.providers import preload_provider_modules, warm_provider_clients

logger = logging.getLogger(__name__)


def close_db_connections() -> None:
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # a connection PostgreSQL already dropped: nothing left to close
            conn.connection = None


def warm_up_call_paths() -> None:
    """One throwaway task through the runner and each SDK, in the worker parent, against a loopback emulator.

    The SDKs build their pydantic models on first use (defer_build) and fill lru caches
    and lazy imports on their first request; done in the parent, every forked horse inherits
    the result instead of paying it (about 40 ms of a 75 ms job, measured with a fork test).
    Going through the Runner (token counting, prompt layout, the retry loop, a rate-limit
    lease under a prefix of its own, cost) also leaves that code's bytecode specialized for
    the horses, which then copy fewer pages. The local emulator (emulator/) speaks the three
    wire protocols; nothing leaves the machine, and the throwaway clients are closed before
    any fork.
    """
    from analysis.limits import ProviderLimiter
    from analysis.providers.anthropic_provider import AnthropicProvider
    from analysis.providers.gemini_provider import GeminiProvider
    from analysis.providers.openai_provider import OpenAIProvider
    from analysis.runner import Runner, TaskSpec
    from analysis.tasks import run_config
    from emulator.server import Emulator
    from jobs.queues import rq_connection
    import jobs.webhooks  # noqa: F401  (imported lazily by finalize; import it once here)

    try:
        emulator = Emulator(host="127.0.0.1", port=0).start()
    except OSError:
        return
    try:
        limiter = ProviderLimiter(rq_connection(), max_in_flight=1, per_minute=0, lease_seconds=10,
                                  prefix="scriptripper:warm-up")
        for provider, model in (
            (OpenAIProvider(api_key="warm-up", base_url=emulator.openai_base_url, timeout=5), "gpt-4o-mini"),
            (AnthropicProvider(api_key="warm-up", base_url=emulator.url, timeout=5), "claude-haiku-4-5"),
            (GeminiProvider(api_key="warm-up", base_url=emulator.url, api_version="v1beta", timeout=5),
             "gemini-2.5-flash"),
        ):
            try:
                config = run_config(provider=provider.name, model=model, max_output_tokens=16)
                Runner(config, provider, limiter=limiter).run("A: hi", [TaskSpec(name="warm-up", prompt="warm up")])
            except Exception:  # a warm-up only: the worker runs without it, a little slower
                logger.debug("warm-up call through %s failed", provider.name, exc_info=True)
            finally:
                close = getattr(provider.client, "close", None)
                if close is not None:
                    close()
    finally:
        emulator.stop()


class ScriptRipperWorker(Worker):
    def work(self, *args, **kwargs):
        from jobs.queues import use_as_rq_connection
        from jobs.reconcile import ReconcilerThread
        from jobs.tasks import request_handback, warm_up_job_path

        # Installed in the parent before any fork, so a horse has it from its first instruction
        # (SIGUSR1's default action would kill it); in the parent it does nothing.
        signal.signal(signal.SIGUSR1, request_handback)
        # One Redis pool per process, the worker's: a horse then opens one connection for RQ's
        # bookkeeping and the job's rate-limit slots together.
        use_as_rq_connection(self.connection)
        # The SDK imports and token encodings (about 3 s) once here, not in every forked horse,
        # and the configured providers' clients built (CA certificates loaded) ready to inherit.
        preload_provider_modules()
        warm_up_call_paths()
        warm_provider_clients()
        try:
            warm_up_job_path()
        except Exception:  # a warm-up only (PostgreSQL may be down at start): horses are a little slower
            logger.warning("could not warm up the job's database path", exc_info=True)
        finally:
            close_db_connections()
        # Everything loaded so far lives as long as the worker: move it out of the garbage
        # collector's reach, so a collection in a horse does not walk (and so copy, page by
        # page, through copy-on-write) the hundreds of MiB of SDK and Django objects it inherited.
        gc.collect()
        gc.freeze()
        reconciler = ReconcilerThread(worker_name=self.name)
        reconciler.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            reconciler.stop()

    def fork_work_horse(self, job, queue):
        # The reconciler thread's connection lives in that thread's storage and is never
        # used by the horse (psycopg does not close a connection inherited across fork).
        close_db_connections()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        # In the horse: never touch the parent's database socket; open a fresh one.
        for conn in connections.all(initialized_only=True):
            conn.connection = None
        # The SDK clients inherited from warm_provider_clients() are kept: the parent never
        # sends a request, so their pools hold no socket; building them again here (loading
        # CA certificates) cost tens of milliseconds per job.
        super().main_work_horse(job, queue)

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        finally:
            # Also on a cold shutdown (SystemExit raised while waiting for the horse, which
            # RQ has killed by then): the job must not be left `started`.
            if not self.horse_left_row_final(job):
                self.settle_job(job.id)

    @staticmethod
    def horse_left_row_final(job) -> bool:
        """True when the horse returned normally after putting the row in a final state (or
        after finding it was not its to run): nothing to settle, so no database round trip
        in the worker parent between two jobs. Anything else (killed, stopped, an exception,
        handed back) goes through settle_job."""
        try:
            if job.get_status(refresh=True) != JobStatus.FINISHED:
                return False
            return job.return_value(refresh=True) in ("finished", "failed", "canceled", "skipped")
        except Exception:  # Redis hiccup or a vanished job: settle the safe way
            return False

    def settle_job(self, job_id: str) -> None:
        from jobs.services import job_settle_after_horse
        from jobs.tasks import db_retry

        try:
            outcome = db_retry(lambda: job_settle_after_horse(job_id=job_id, worker=self.name), tries=5)
            if outcome not in (None, "finished", "failed", "canceled"):
                logger.info("job %s settled after its horse exited: %s", job_id, outcome)
        except Exception:
            logger.exception("could not settle job %s; the reconciler will recover it", job_id)
        finally:
            close_db_connections()

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
