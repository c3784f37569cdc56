"""The worker side of jobs: what `python manage.py rqworker high default low` runs.

`jobs.worker.ScriptRipperWorker` (the default) and `jobs.worker.ForkingWorker` are the worker classes that
settings, the README and `--worker-class` name; they live in `workers.py`. A run of one job is `runs.py`,
its writes `lifecycle.py`, RQ's own records `rq_records.py` (RQ's private members: `rq_private.py`),
the database pool `dbpool.py`, and the passes every worker runs in the background `periodic.py`,
`reconcile.py` and `provider_batch_poller.py`.
"""

from jobs.worker.workers import ForkingWorker, ScriptRipperWorker

__all__ = ["ForkingWorker", "ScriptRipperWorker"]
