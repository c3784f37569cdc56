"""`jobs.tasks.run_job`: the function path every queued RQ job names (jobs.services.RUN_JOB_FUNC), kept
stable across releases so that jobs queued by one release run on the workers of another; the code is jobs.worker.entry."""

from jobs.worker.entry import run_job

__all__ = ["run_job"]
