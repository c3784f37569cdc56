"""The report page of a job, for people (jobs/report.py): opened through a share link, with no login, or by
staff from the admin's job page (jobs/admin.py). Server-rendered; it loads nothing but its own stylesheet."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.http import require_safe

from jobs.models import Job
from jobs.report import job_report
from jobs.selectors import job_for_share_token

# The page shows the model's text: no script runs on it at all, nothing loads but its stylesheet, and a
# link followed out of it sends no referrer (the share link's token is in this page's address).
REPORT_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "private, no-store",
}


def report_response(request: HttpRequest, job: Job, **context) -> HttpResponse:
    return _page(TemplateResponse(request, "jobs/report.html", {"report": job_report(job), **context}))


@require_safe
def job_report_shared(request: HttpRequest, token: str) -> HttpResponse:
    """The report a share link opens. A link that is not genuine, expired or revoked, and a job that is gone,
    all answer the same 404."""
    job = job_for_share_token(token)
    if job is None:
        return _page(TemplateResponse(request, "jobs/report_not_found.html", status=404))
    return report_response(request, job)


def _page(response: HttpResponse) -> HttpResponse:
    for header, value in REPORT_HEADERS.items():
        response[header] = value
    return response
