"""System checks on the analysis profiles (run with `manage.py check --database default` and by `migrate`)."""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from analysis.providers import PROVIDER_NAMES, provider_configured, provider_key_setting


@register(Tags.database)
def check_profile_providers(app_configs, databases=None, **kwargs):
    """A profile whose default provider has no key here: every job relying on that default is refused (400)."""
    from analysis.models import AnalysisProfile

    try:
        rows = list(AnalysisProfile.objects.exclude(default_provider="")
                    .values_list("default_provider", flat=True).distinct())
    except DatabaseError:  # not migrated yet: nothing to check
        return []
    return [
        Warning(f"Analysis profiles name {provider} as their default provider, but {provider_key_setting(provider)} "
                f"is not set: jobs using those defaults will be refused.", id="scriptripper.W101")
        for provider in rows if provider in PROVIDER_NAMES and not provider_configured(provider)
    ]
