"""The job document (README, "The API": `GET jobs/{id}`), rendered in one place from the models: the API's
answer, the webhook body and `analyze --json` all come from `job_document`. Reads only: no service here."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count

from jobs.models import BatchRequest, Job, ProviderBatch, Task
from jobs.serializers import JobSerializer


def job_with_tasks(job: Job) -> Job:
    """The job with its tasks read once, in order (`task_list`), and what the document counts from them."""
    job.task_list = list(job.tasks.all())
    job.tasks_total = len(job.task_list)
    job.tasks_done = sum(1 for task in job.task_list if task.status != Task.Status.PENDING)
    job.tasks_cost = sum((task.cost for task in job.task_list), Decimal("0"))
    job.batch_info = batch_summary(job)  # null unless batch mode: provider batch ids, where its calls are
    # An ask job's answer says what it read (analysis/engine/ask.py): the metadata's meetings and turns_read.
    job.consulted = next((task.report.get("consulted") for task in job.task_list if task.name == Job.ASK_TASK),
                         None) if job.kind == Job.Kind.ASK else None
    return job


def job_document(job: Job, request=None) -> dict:
    """The job document: GET /api/v1/jobs/{id}, the webhook body and `analyze --json`. `request`, when there
    is one, gives `report_url` its host (jobs/sharing.py: absolute_url)."""
    return JobSerializer(job_with_tasks(job), context={"request": request}).data


def batch_summary(job: Job) -> dict | None:
    """The job document's `batch`: its provider batch ids and where its calls are (null unless batch mode)."""
    if job.processing != "batch":
        return None
    counts = dict(BatchRequest.objects.filter(job_id=job.id).values_list("status").annotate(n=Count("id")))
    ids = list(ProviderBatch.objects.filter(requests__job_id=job.id).exclude(provider_batch_id="")
               .values_list("provider_batch_id", flat=True).distinct())
    return {
        "waiting": job.awaiting_batch and job.status == Job.Status.STARTED,
        "waiting_since": job.batch_wait_started_at,
        "batch_ids": sorted(ids),
        "calls": {status: counts.get(status, 0) for status in BatchRequest.Status.values},
    }
