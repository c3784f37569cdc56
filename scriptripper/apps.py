from __future__ import annotations

from django.apps import AppConfig


class ScriptRipperConfig(AppConfig):
    """The project package as an app: its templates (the admin's front page) and its `runserver`, which
    comes before django.contrib.staticfiles' in INSTALLED_APPS so that it is the one run."""

    name = "scriptripper"
    verbose_name = "ScriptRipper"
