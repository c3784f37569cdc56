from __future__ import annotations

from django.contrib import admin

from analysis.models import AnalysisProfile


@admin.register(AnalysisProfile)
class AnalysisProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "builtin", "default_provider", "default_model", "task_count", "updated_at")
    list_filter = (("owner", admin.EmptyFieldListFilter), "default_provider")
    search_fields = ("name", "description", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "owner", "description")}),
        ("Prompts", {"fields": ("system_prompt", "tasks"),
                     "description": 'tasks: an ordered JSON list of {"name": ..., "prompt": ...}. '
                                    "Leave owner empty for a built-in profile (visible to every user)."}),
        ("Defaults", {"fields": ("default_provider", "default_model")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(boolean=True, description="built in")
    def builtin(self, obj: AnalysisProfile) -> bool:
        return obj.is_builtin

    @admin.display(description="tasks")
    def task_count(self, obj: AnalysisProfile) -> int:
        return len(obj.tasks or [])
