"""The RQ private members the worker relies on (jobs/worker/rq_private.py) exist in the pinned RQ, with the
shape the worker uses: an RQ upgrade that drops or changes one fails here, naming it and why it is used, rather
than in a running worker."""

from __future__ import annotations

import inspect

import pytest
from django.conf import settings
from redis import Redis
from rq.job import Job as RQJob
from rq.queue import Queue

from jobs.worker import ScriptRipperWorker
from jobs.worker.rq_private import RQ_PRIVATE_MEMBERS
from scriptripper.redis_clients import redis_client


def _instance_of(cls: type, connection: Redis):
    if cls is RQJob:
        return RQJob.create(func="jobs.tasks.run_job", args=("x",), connection=connection)
    queue = Queue("default", connection=connection)
    return ScriptRipperWorker([queue], connection=connection)


@pytest.mark.parametrize(("cls", "member"), sorted(RQ_PRIVATE_MEMBERS, key=lambda key: (key[0].__name__, key[1])),
                         ids=lambda value: getattr(value, "__name__", value))
def test_the_pinned_rq_has_the_private_member(cls, member):
    connection = redis_client(settings.RQ_QUEUES["default"])
    instance = _instance_of(cls, connection)
    assert hasattr(cls, member) or member in vars(instance), (
        f"RQ no longer has {cls.__name__}.{member}, which jobs/worker/rq_private.py relies on: "
        f"{RQ_PRIVATE_MEMBERS[(cls, member)]}. Adapt that module to the new RQ before upgrading.")


def test_rq_success_records_take_the_arguments_the_worker_passes():
    parameters = inspect.signature(RQJob._handle_success).parameters
    assert {"result_ttl", "pipeline", "worker_name", "execution_id", "execution_started_at",
            "execution_ended_at"} <= set(parameters), (
        "RQ's Job._handle_success changed its parameters; jobs/worker/rq_private.rq_job_record_success passes "
        f"them by name: {list(parameters)}")


def test_every_private_member_the_worker_package_touches_is_listed():
    """No RQ private used outside rq_private.py: the other worker modules use the named wrappers."""
    import jobs.worker.rq_records
    import jobs.worker.workers

    private_names = {member for _, member in RQ_PRIVATE_MEMBERS}
    for module in (jobs.worker.workers, jobs.worker.rq_records):
        source = inspect.getsource(module)
        used = sorted(name for name in private_names if f".{name}" in source)
        assert not used, f"{module.__name__} uses RQ's private {used}: go through jobs/worker/rq_private.py"
