"""Jobs in the Django admin: what ran, for whom, on which model, at what cost.

Read-only on purpose: a job row is written by the services and the worker, and
an edit in a form would bypass both (the queue, the ledger, the webhooks).
Operators act through the actions below, which call the same services as the
API (jobs.services.job_cancel / job_retry / job_enqueue / job_delete).
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum, When
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from redis.exceptions import RedisError

from analysis.engine.structured import decode_task
from analysis.selectors import health_row, models_health
from jobs import charts
from jobs.models import Job, Task, WebhookDelivery
from jobs.monitoring import queue_stats
from jobs.report import job_report, task_request_view
from jobs.selectors import (
    CHART_RANGES, chart_buckets, jobs_per_hour_by_status, queue_wait_percentiles, reuse_sources,
    spend_by_provider_model,
)
from jobs.services import job_cancel, job_delete, job_enqueue, job_retry
from jobs.views import report_response
from scriptripper.errors import ServiceError
from scriptripper.monitoring import redis_connection
from scriptripper.output_fields import usd
from transcripts.models import Transcript

TRANSCRIPT_PREVIEW_CHARS = 2000
QUESTION_COLUMN_CHARS = 50  # an ask's question in the list: one line a row (jobs/static/jobs/admin.css)


def _duration(seconds: float | None) -> str:
    """0.42 s, 12.3 s, 3 min 05 s, 2 h 04 min: most jobs take seconds, which 0:00:00 hid."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _job_link(job: Job) -> str:
    return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[job.pk]), str(job.pk)[:8])


def _pre(text: str) -> str:
    # format_html escapes: task outputs and errors are model and provider text, never trusted HTML.
    if not text:
        return "—"
    return format_html('<pre style="white-space: pre-wrap; margin: 0; max-width: 60em">{}</pre>', text)


def _answered_by(task: Task) -> str:
    """The model that answered (a failed task: the last one tried), and the models it fell back from, why."""
    model = f"{task.provider} / {task.model}"
    if not task.fallback_from:
        return model
    moves = format_html_join("", "<li>{} / {}: <b>{}</b> — {}</li>", (
        (entry["provider"], entry["model"], entry["reason"], entry["message"]) for entry in task.fallback_from))
    return format_html("{} <span class=\"sr-fallback\">after falling back from:</span><ul>{}</ul>", model, moves)


class WebhookDeliveryInline(admin.TabularInline):
    # Its heading reads "Webhook deliveries" (the model's verbose_name_plural; Django's default said "deliverys").
    # Shown only for a job that has deliveries (JobAdmin.get_inline_instances): no empty table.
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ("url", "attempts", "last_status", "last_error", "next_attempt_at", "delivered_at", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class OutcomeFilter(admin.SimpleListFilter):
    """Finished jobs whose tasks did not all answer (the document's "partial": true), apart from the clean ones."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("errors", "finished with errors"), ("clean", "finished, every task answered")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        unanswered = Exists(Task.objects.filter(job=OuterRef("pk")).exclude(status=Task.Status.SUCCEEDED))
        if self.value() == "errors":
            return queryset.filter(unanswered, status=Job.Status.FINISHED)
        if self.value() == "clean":
            return queryset.filter(~unanswered, status=Job.Status.FINISHED)
        return queryset


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("short_id", "status", "owner", "provider", "model", "queue", "question", "cost_usd",
                    "tasks_progress", "created", "duration")
    list_filter = ("status", OutcomeFilter, "provider", "queue", ("created_at", admin.DateFieldListFilter), "kind")
    # Search: a job id (or its beginning, as it appears in logs and URLs) or the owner's username.
    search_fields = ("id__istartswith", "owner__username")
    search_help_text = "A job id (or its first characters) or an owner's username."
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over a large table on every page view is not worth it
    ordering = ("-created_at",)
    inlines = (WebhookDeliveryInline,)
    actions = ("cancel_jobs", "retry_jobs", "requeue_jobs", "delete_jobs")
    # The job page (admin/jobs/job/change_form.html): its fields in a grid, then each task as a section that
    # folds, with its prompt as written, its schema, and its answer drawn as the report draws it.
    change_form_template = "admin/jobs/job/change_form.html"
    fieldsets = (
        (None, {"classes": ["sr-grid"],
                "fields": ("id", "status", "owner", "provider", "model", "fallback_chain", "profile_name", "kind",
                           "queue", "processing", "error")}),  # the long ones last, across the grid
        ("Progress and cost", {"classes": ["sr-grid"],
                               "fields": ("tasks_progress", "cost_usd", "duration", "created_at", "started_at",
                                          "finished_at", "heartbeat_at", "attempts", "lost_calls", "shared_until",
                                          "reuse_note")}),
        # Collapsed: the transcript preview is long, and the task results below are what one comes for.
        ("Request", {"classes": ["collapse"],
                     "fields": ("system_prompt_text", "params", "max_cost", "reuse_results", "callback_url",
                                "idempotency_key", "transcript_ref", "transcript_deleted", "transcript_format", "language",
                                "transcript_preview")}),
    )
    # An ask's question and meetings: shown in its own section (get_fieldsets).
    readonly_fields = (*(field for _, options in fieldsets for field in options["fields"]), "question_text",
                       "scope_meetings")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        # The transcript can be megabytes: the list never loads it (the detail page shows a preview).
        # Correlated subqueries, not a JOIN with GROUP BY: PostgreSQL then counts the tasks of the
        # 50 rows on the page only, instead of every job's before the LIMIT.
        tasks = Task.objects.filter(job=OuterRef("pk")).order_by().values("job")
        return super().get_queryset(request).defer("transcript").annotate(
            tasks_total=Subquery(tasks.annotate(n=Count("pk")).values("n")),
            tasks_done=Subquery(tasks.exclude(status=Task.Status.PENDING).annotate(n=Count("pk")).values("n")),
            tasks_cost=Subquery(tasks.annotate(c=Sum("cost")).values("c")),
            tasks_reused=Subquery(tasks.filter(reused=True).annotate(n=Count("pk")).values("n")),
            # An ask job's question is its one task's prompt.
            ask_prompt=Case(When(kind=Job.Kind.ASK, then=Subquery(
                Task.objects.filter(job=OuterRef("pk"), name=Job.ASK_TASK).values("prompt")[:1]))),
        )

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None):
        if obj is None or obj.kind != Job.Kind.ASK:
            return self.fieldsets
        # An ask reads its scope's transcripts, not one of its own: its question and meetings instead.
        head, progress, (title, options) = self.fieldsets
        request_fields = tuple(f for f in options["fields"] if not f.startswith("transcript"))
        return (head, ("Question", {"fields": ("question_text", "scope_meetings")}), progress,
                (title, {**options, "fields": request_fields}))

    # Read-only: no adding or editing jobs by hand; actions go through the services.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # Django's bulk delete would skip job_delete (stopping the horse, cleaning Redis)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Cancel, retry, requeue and delete: for whoever may change jobs (superusers, or granted)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    # --- charts ----------------------------------------------------------------------------------
    def get_urls(self):
        return [path("charts/", self.admin_site.admin_view(self.charts_view), name="jobs_job_charts"),
                path("<path:object_id>/report/", self.admin_site.admin_view(self.report_view), name="jobs_job_report"),
                *super().get_urls()]

    def get_inline_instances(self, request: HttpRequest, obj=None):
        # No empty table: the webhook deliveries only where there are some.
        if obj is None or not obj.webhook_deliveries.exists():
            return []
        return super().get_inline_instances(request, obj)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        job = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if job is not None and self.has_view_permission(request, job):
            report_url = reverse("admin:jobs_job_report", args=[job.pk])
            # The answers only (a long transcript is the report's to show); citations open the report at their turn.
            report = job_report(job, turn_href=report_url, transcript=False)
            sources = reuse_sources(job)
            context.update(sr_report=report, sr_report_url=report_url, sr_tasks=[
                {"task": task, "report": task_report, "request": task_request_view(task),
                 "reused_from": sources.get(task.name), "answered_by": _answered_by(task)}
                for task, task_report in zip(job.task_list, report.tasks)])
        return super().change_view(request, object_id, form_url, context)

    def report_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The job's report page, for staff, whoever owns the job (the owner's way in is a share link)."""
        job = self.get_object(request, unquote(object_id))  # None for an id that is not a job's
        if job is None:
            raise Http404("No such job.")
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return report_response(request, job, admin_url=reverse("admin:jobs_job_change", args=[job.pk]))

    def charts_view(self, request: HttpRequest) -> HttpResponse:
        """Jobs per hour by status, spend by provider and model, queue wait: last day and week, from PostgreSQL."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        sections = []
        for label, (span, unit) in CHART_RANGES.items():
            since = now - span
            sections.append({"label": label, "charts": chart_set(since=since, until=now, unit=unit)})
        context = {**self.admin_site.each_context(request), "title": "Charts", "opts": self.opts,
                   "sections": sections, "queues": queue_depths(), "health": provider_health_now(),
                   "generated_at": now}
        return TemplateResponse(request, "admin/jobs/charts.html", context)

    # --- columns ---------------------------------------------------------------------------------
    class Media:
        # One line a row: at 1,400 px the model names and dates wrapped into three-line rows.
        css = {"all": ["jobs/admin.css"]}

    @admin.display(description="fallback models")
    def fallback_chain(self, job: Job) -> str:
        return " → ".join(f"{entry['provider']} / {entry['model']}" for entry in job.fallback_models) or "—"

    @admin.display(description="job", ordering="id")
    def short_id(self, job: Job) -> str:
        return str(job.id)[:8]

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, job: Job) -> str:
        return f"{timezone.localtime(job.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="cost (USD)", ordering="tasks_cost")
    def cost_usd(self, job: Job) -> str:
        # total_cost is written when the job ends; while it runs, the tasks' sum is the live figure.
        cost = job.total_cost if job.is_final else getattr(job, "tasks_cost", None)
        reused = getattr(job, "tasks_reused", None)
        return usd(cost) + (f" ({reused} reused)" if reused else "")

    @admin.display(description="reused answers")
    def reuse_note(self, job: Job) -> str:
        sources = reuse_sources(job)
        reused = job.tasks.filter(reused=True).count()
        if not reused:
            return "—"
        by_job: dict[Job, list[str]] = {}
        for name, source in sources.items():
            by_job.setdefault(source, []).append(name)
        parts = format_html_join("; ", "{} from job {}", ((", ".join(names), _job_link(source))
                                                          for source, names in by_job.items()))
        return format_html("{} of {} answers reused at $0, without a provider call: {}", reused,
                           job.tasks.count(), parts or "their source job is gone")

    @admin.display(description="tasks")
    def tasks_progress(self, job: Job) -> str:
        done = getattr(job, "tasks_done", None)
        total = getattr(job, "tasks_total", None)
        if done is None:
            counts = job.tasks.aggregate(total=Count("pk"), done=Count("pk", filter=~Q(status=Task.Status.PENDING)))
            done, total = counts["done"], counts["total"]
        return f"{done or 0}/{total or 0}"

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        if job.started_at and not job.finished_at and job.status == Job.Status.STARTED:
            return f"{_duration((timezone.now() - job.started_at).total_seconds())} (running)"
        return _duration(job.duration_s)

    @admin.display(description="shared until")
    def shared_until(self, job: Job) -> str:
        if job.share_expires_at is None or job.share_expires_at <= timezone.now():
            return "not shared"
        return f"{timezone.localtime(job.share_expires_at):%Y-%m-%d %H:%M:%S} (a link of the owner's works)"

    @admin.display(description="question")
    def question(self, job: Job) -> str:
        prompt = getattr(job, "ask_prompt", None)
        if not prompt:
            return "—"
        text = decode_task(prompt).prompt
        short = text if len(text) <= QUESTION_COLUMN_CHARS else text[:QUESTION_COLUMN_CHARS - 1] + "…"
        return format_html('<span title="{}">{}</span>', text, short)

    @admin.display(description="question")
    def question_text(self, job: Job) -> str:
        task = job.tasks.filter(name=Job.ASK_TASK).only("prompt").first()
        return _pre(decode_task(task.prompt).prompt) if task else "—"

    @admin.display(description="meetings")
    def scope_meetings(self, job: Job) -> str:
        """The scope as sent, and every meeting it was resolved to at submit (linked while it exists)."""
        scope = job.scope or {}
        ids = scope.get("transcripts") or []
        found = {str(t.id): t for t in Transcript.objects.filter(id__in=ids).only("id", "title", "occurred_at")}

        def item(transcript_id: str) -> str:
            transcript = found.get(transcript_id)
            if transcript is None:
                return f"{transcript_id} (deleted since)"
            return format_html('<a href="{}">{}</a> ({})', reverse("admin:transcripts_transcript_change",
                                                                   args=[transcript.pk]),
                               str(transcript), f"{transcript.occurred_at:%Y-%m-%d}")

        given = scope.get("given")
        return format_html("<p>Scope: {}; {} meeting(s).</p><ul>{}</ul>",
                           json.dumps(given) if given else "all of the owner's transcripts", len(ids),
                           format_html_join("", "<li>{}</li>", ((item(i),) for i in ids)))

    @admin.display(description="system prompt")
    def system_prompt_text(self, job: Job) -> str:
        return _pre(job.system_prompt)

    @admin.display(description="transcript")
    def transcript_preview(self, job: Job) -> str:
        text = Job.objects.filter(pk=job.pk).values_list("transcript", flat=True).first() or ""
        if len(text) <= TRANSCRIPT_PREVIEW_CHARS:
            return _pre(text)
        return format_html("{}<p>… {} more characters ({} in all).</p>", _pre(text[:TRANSCRIPT_PREVIEW_CHARS]),
                           f"{len(text) - TRANSCRIPT_PREVIEW_CHARS:,}", f"{len(text):,}")

    # --- actions ---------------------------------------------------------------------------------
    def _run(self, request: HttpRequest, queryset: QuerySet[Job], verb: str, operation) -> None:
        done, refused = 0, []
        for job in queryset.defer("transcript"):
            try:
                operation(job)
            except ServiceError as exc:
                refused.append(f"{str(job.id)[:8]}: {exc.message}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not {verb.lower()}: {reason}", messages.WARNING)

    @admin.action(description="Cancel the selected jobs", permissions=["operate"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._run(request, queryset, "Canceled", lambda job: job_cancel(job=job))

    @admin.action(description="Retry the selected jobs (their tasks without a result)", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._run(request, queryset, "Retried", lambda job: job_retry(job=job))

    @admin.action(description="Requeue the selected queued jobs (put them on their RQ queue again)",
                  permissions=["operate"])
    def requeue_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        def requeue(job: Job) -> None:
            # For a queued job whose RQ entry was lost (a Redis restart without AOF, a flush):
            # the row is the truth, so the row decides, and job_enqueue replaces any old entry.
            if job.status != Job.Status.QUEUED:
                raise ServiceError(f"the job is {job.status}; only a queued job can be requeued (retry a final one)")
            if not job_enqueue(job_id=job.id):
                raise ServiceError("Redis is unreachable; the reconciler will enqueue it when Redis is back")

        self._run(request, queryset, "Requeued", requeue)

    @admin.action(description="Delete the selected jobs (stopping them first)", permissions=["operate"])
    def delete_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._run(request, queryset, "Deleted", lambda job: job_delete(job=job))


# --- the charts page's pieces ----------------------------------------------------------------------

def _hour_label(bucket) -> str:
    return f"{bucket:%H:00}"


def _day_label(bucket) -> str:
    return f"{bucket:%a %d}"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"


def chart_set(*, since, until, unit: str) -> list[dict]:
    """The three charts of one period. Jobs are counted per hour in both periods (the question is "when"),
    money and waits per hour over a day and per day over a week."""
    hours = chart_buckets(since=since, until=until, unit="hour")
    buckets = chart_buckets(since=since, until=until, unit=unit)
    label = _hour_label if unit == "hour" else _day_label

    counts = jobs_per_hour_by_status(since=since)
    statuses = [s for s in Job.Status.values if any(key[1] == s for key in counts)]
    colours = charts.colours_for(statuses)
    jobs_chart = charts.stacked_bars(
        kind="jobs", title="Jobs per hour, by status", buckets=hours, fmt=lambda v: f"{v:g}", counts=True,
        bucket_label=_hour_label if unit == "hour" else lambda b: f"{b:%a %H:00}",
        series=[charts.Series(s, [float(counts.get((h, s), 0)) for h in hours], colours[s]) for s in statuses])

    spend = spend_by_provider_model(since=since, unit=unit)
    models = sorted({key[1] for key in spend})
    colours = charts.colours_for(models)
    spend_chart = charts.stacked_bars(
        kind="spend", title=f"Spend per {unit} (USD), by provider/model", buckets=buckets, bucket_label=label,
        fmt=lambda v: usd(Decimal(str(round(v, 8)))),
        series=[charts.Series(m, [float(spend.get((b, m), 0)) for b in buckets], colours[m]) for m in models])

    waits = queue_wait_percentiles(since=since, unit=unit)
    present = [b in waits for b in buckets]
    wait_chart = charts.lines(
        kind="wait", title=f"Time jobs waited in the queue, per {unit} they started (median, 95th percentile)",
        buckets=buckets, bucket_label=label, fmt=_seconds, present=present, seconds=True,
        series=[charts.Series("median", [waits.get(b, (0, 0, 0))[0] for b in buckets], "#0072B2"),
                charts.Series("p95", [waits.get(b, (0, 0, 0))[1] for b in buckets], "#D55E00")])
    return [
        {"title": "Jobs per hour by status", "svg": jobs_chart,
         "summary": f"{sum(counts.values())} jobs"},
        {"title": f"Spend per {unit} by provider and model", "svg": spend_chart,
         "summary": f"{usd(sum(spend.values(), Decimal('0')))} in all"},
        {"title": "Queue wait", "svg": wait_chart,
         "summary": f"{sum(n for _, _, n in waits.values())} jobs started"},
    ]


def provider_health_now() -> dict:
    """Every model with failures on record, as every worker sees it now (analysis/engine/health.py, in Redis)."""
    try:
        health = models_health()
    except RedisError as exc:
        return {"available": False, "error": type(exc).__name__, "models": []}
    return {"available": True, "models": [{"provider": provider, "model": model, **health_row(state)}
                                          for (provider, model), state in sorted(health.items())]}


def queue_depths() -> dict:
    """The queues now: Redis holds only this (the history above is PostgreSQL's)."""
    connection = redis_connection()
    try:
        return {"available": True, "queues": queue_stats(connection)}
    except RedisError as exc:
        return {"available": False, "error": type(exc).__name__, "queues": []}
    finally:
        connection.close()
