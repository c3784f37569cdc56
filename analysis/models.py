from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from analysis.engine.structured import TaskRequest, encode_task


class AnalysisProfile(models.Model):
    """A saved set of questions for one kind of transcript ("meeting-notes", "lecture", ...).

    `owner` None means built in: visible to every user, changed by staff only.
    `tasks` is an ordered list of {"name", "prompt"} (a JSON list, not an object,
    because the order is the order of the results).
    """

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    system_prompt = models.TextField(blank=True, default="")
    tasks = models.JSONField(default=list)
    default_provider = models.CharField(max_length=20, blank=True, default="")
    default_model = models.CharField(max_length=100, blank=True, default="")
    language = models.CharField(max_length=35, blank=True, default="")  # BCP 47; empty: the transcript's
    # The processing mode and fallback of the profile's jobs when the request names none (empty: the defaults).
    processing = models.CharField(max_length=10, blank=True, default="")
    fallback = models.CharField(max_length=10, blank=True, default="")
    # The fallback chain of its jobs when the request names none ([{"provider", "model"}]; [] opts out of the
    # server's MODEL_FALLBACKS; null: names none).
    fallback_models = models.JSONField(null=True, blank=True, default=None)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                              related_name="analysis_profiles")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="unique_profile_name_per_owner"),
            # NULLs are distinct in a unique constraint: built-ins need their own.
            models.UniqueConstraint(fields=["name"], condition=models.Q(owner__isnull=True),
                                    name="unique_builtin_profile_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (built in)" if self.is_builtin else f"{self.name} ({self.owner})"

    @property
    def is_builtin(self) -> bool:
        return self.owner_id is None

    def task_pairs(self, *, structured: bool = True) -> list[tuple[str, str]]:
        """(name, stored prompt) of each task: a task with a schema or cite as the envelope
        analysis/engine/structured.py reads; structured=False: the free-text wording, without schema."""
        if not structured:
            return [(task["name"], task.get("text_prompt") or task["prompt"]) for task in self.tasks]
        return [(task["name"], encode_task(TaskRequest(prompt=task["prompt"], schema=task.get("schema"),
                                                       cite=bool(task.get("cite")))))
                for task in self.tasks]
