from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import api as accounts_api
from analysis import api as analysis_api
from jobs import api as jobs_api
from jobs import views as jobs_views
from scriptripper import ops
from scriptripper.api import ApiIndexApi
from scriptripper.errors import api_not_found
from transcripts import api as transcripts_api

# The collapsible app list beside every admin page took 290 px from the job table (cramped at 1,400 px);
# the front page and the breadcrumbs lead everywhere it did.
admin.site.enable_nav_sidebar = False

handler400 = "scriptripper.errors.json_400"
handler403 = "scriptripper.errors.json_403"
handler404 = "scriptripper.errors.json_404"
handler500 = "scriptripper.errors.json_500"

# A real UUID shape: 36 arbitrary hex digits and dashes would reach the lookup and fail there.
UUID_SHAPE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID = rf"(?P<job_id>{UUID_SHAPE})"
TRANSCRIPT_ID = rf"(?P<transcript_id>{UUID_SHAPE})"


def api(route: str, view, name: str):
    """An /api/v1/ route that answers with and without a trailing slash (never redirecting)."""
    return re_path(rf"^api/v1/{route}/?$", view, name=name)


urlpatterns = [
    re_path(r"^api/v1/?$", ApiIndexApi.as_view(), name="api-index"),
    api("jobs/analyze", jobs_api.JobAnalyzeApi.as_view(), "job-analyze"),
    api("jobs/batch", jobs_api.JobBatchApi.as_view(), "job-batch"),
    api("jobs/estimate", jobs_api.JobEstimateApi.as_view(), "job-estimate"),
    api("models", analysis_api.ModelListApi.as_view(), "model-list"),
    api("profiles", analysis_api.ProfileListCreateApi.as_view(), "profile-list"),
    api(r"profiles/(?P<profile_id>[0-9]{1,18})", analysis_api.ProfileDetailApi.as_view(), "profile-detail"),
    api("jobs", jobs_api.JobListApi.as_view(), "job-list"),
    api(f"jobs/{UUID}", jobs_api.JobDetailApi.as_view(), "job-detail"),
    api(f"jobs/{UUID}/cancel", jobs_api.JobCancelApi.as_view(), "job-cancel"),
    api(f"jobs/{UUID}/retry", jobs_api.JobRetryApi.as_view(), "job-retry"),
    api("transcripts", transcripts_api.TranscriptListCreateApi.as_view(), "transcript-list"),
    api(f"transcripts/{TRANSCRIPT_ID}", transcripts_api.TranscriptDetailApi.as_view(), "transcript-detail"),
    api("search", transcripts_api.SearchApi.as_view(), "search"),
    api(f"jobs/{UUID}/share", jobs_api.JobShareApi.as_view(), "job-share"),
    # "." unescaped: the schema shows the path as written (a regex escape would show in it); any other character
    # there matches no other endpoint either.
    api(f"jobs/{UUID}/report.md", jobs_api.JobReportMarkdownApi.as_view(), "job-report-markdown"),
    api("ask", jobs_api.AskApi.as_view(), "ask"),
    api("account", accounts_api.AccountApi.as_view(), "account"),
    api("account/webhook-secret", accounts_api.AccountWebhookSecretApi.as_view(), "account-webhook-secret"),
    api("queues", jobs_api.QueueListApi.as_view(), "queue-list"),
    api("tokens", accounts_api.TokenListApi.as_view(), "token-list"),
    api(r"tokens/(?P<token_id>[0-9]{1,18})", accounts_api.TokenRevokeApi.as_view(), "token-detail"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Last of the API routes: any other /api/ path (a job id that is not a UUID too) is a JSON 404.
    re_path(r"^api/", api_not_found, name="api-not-found"),
    # Probes and scrapers: no API token, their own formats (scriptripper/ops.py).
    re_path(r"^healthz/?$", ops.healthz, name="healthz"),
    # A job's report page, opened through a share link: no API token, HTML (jobs/views.py).
    re_path(r"^reports/(?P<token>[A-Za-z0-9_:.-]{1,500})/?$", jobs_views.job_report_shared, name="job-report"),
    re_path(r"^metrics/?$", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
]
