"""The RQ worker class used by `python manage.py rqworker high default low`.

A forking `Worker` (one work horse per job, so a running job can be stopped and
a crashed job cannot take the worker down). Database connections are closed
before every fork: a connection opened by the worker parent and inherited by a
horse is shared by two processes, the cause of django-rq's "SSL error" and
"connection already closed" reports.
"""

from __future__ import annotations

from django.db import connections
from rq.worker import Worker

from analysis.providers import reset_provider_clients


def close_db_connections() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()


class ScriptRipperWorker(Worker):
    def fork_work_horse(self, job, queue):
        close_db_connections()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job, queue):
        # In the horse: nothing inherited from the parent may be reused. SDK clients
        # hold connection pools (sockets shared with the parent), so drop them too.
        for conn in connections.all(initialized_only=True):
            conn.close_if_unusable_or_obsolete()
            conn.connection = None  # never touch the parent's socket; open a fresh one
        reset_provider_clients()
        super().main_work_horse(job, queue)
