"""Transcripts in the Django admin: what is stored, for whom, from which meeting, and how much of it.

Read-only: a transcript's turns and search entries are written by the services (a language changed in a
form would leave its turns in the old text search configuration). Deleting goes through Django's collector,
which applies what the jobs' foreign key says (jobs.models.keep_results_without_transcript).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.html import format_html

from transcripts.models import Transcript
from transcripts.selectors import tag_counts

TEXT_PREVIEW_CHARS = 2000
SPEAKERS_SHOWN = 4


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [(tag, f"{tag} ({count})") for tag, count in tag_counts()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Transcript]) -> QuerySet[Transcript]:
        return queryset.filter(tags__contains=[self.value()]) if self.value() else queryset


@admin.register(Transcript)
class TranscriptAdmin(admin.ModelAdmin):
    list_display = ("display_title", "occurred_at", "owner", "speakers_shown", "job_count", "size")
    list_filter = (TagFilter, ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("title",)
    search_help_text = "Words of the title."
    date_hierarchy = "occurred_at"
    list_select_related = ("owner",)
    list_per_page = 50
    show_full_result_count = False
    ordering = ("-occurred_at",)
    fields = ("id", "title", "owner", "occurred_at", "tags", "transcript_language", "format", "turn_count",
              "speakers", "tokens", "job_count", "created_at", "digest", "text_preview")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transcript]:
        # The text can be megabytes: the list never loads it. The job count is a correlated subquery, so
        # PostgreSQL counts the jobs of the rows on the page only.
        jobs = Transcript.objects.filter(pk=OuterRef("pk")).annotate(n=Count("jobs")).values("n")
        return super().get_queryset(request).defer("text").annotate(jobs_total=Subquery(jobs))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="title", ordering="title")
    def display_title(self, transcript: Transcript) -> str:
        return transcript.title or format_html("<i>{}</i>", "untitled")

    @admin.display(description="speakers")
    def speakers_shown(self, transcript: Transcript) -> str:
        more = len(transcript.speakers) - SPEAKERS_SHOWN
        return ", ".join(transcript.speakers[:SPEAKERS_SHOWN]) + (f" +{more}" if more > 0 else "") or "—"

    @admin.display(description="jobs", ordering="jobs_total")
    def job_count(self, transcript: Transcript) -> int:
        return transcript.jobs_total

    @admin.display(description="size")
    def size(self, transcript: Transcript) -> str:
        return f"{transcript.turn_count:,} turns, {transcript.tokens:,} tokens"

    @admin.display(description="text")
    def text_preview(self, transcript: Transcript) -> str:
        text = transcript.text
        cut = "\n…" if len(text) > TEXT_PREVIEW_CHARS else ""
        return format_html('<pre style="white-space: pre-wrap">{}{}</pre>', text[:TEXT_PREVIEW_CHARS], cut)
