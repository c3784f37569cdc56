"""System checks on the analysis profiles (run with `manage.py check --database default` and by `migrate`)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from analysis.analyze import context_overrides, price_known
from analysis.clients import endpoints, provider_configured, provider_key_setting, provider_names
from analysis.engine.catalogue import prices_version, resolve_model
from analysis.engine.providers import PROVIDER_NAMES
from analysis.models import AnalysisProfile


@register(Tags.database)
def check_profile_providers(app_configs, databases=None, **kwargs):
    """A profile whose default provider has no key here: every job relying on that default is refused (400)."""
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


@register()
def check_endpoint_prices(app_configs, **kwargs):
    """A configured endpoint model without a price: its jobs cost 0, marked price_unknown (maybe intended, for a
    local model; a hosted one should say what it charges)."""
    warnings = []
    for name, endpoint in endpoints().items():
        unpriced = [m for m, entry in endpoint.models.items() if entry.prices is None] if endpoint.prices is None else []
        if endpoint.prices is None and not endpoint.models:
            unpriced = ["(any model)"]
        if unpriced:
            warnings.append(Warning(
                f"Endpoint {name!r} has no price for {', '.join(unpriced)}: jobs on it are billed 0 and marked "
                f"price_unknown.", hint="Add \"prices\": {\"input\": ..., \"output\": ...} (USD per million tokens) "
                                        "to the endpoint or model in OPENAI_COMPATIBLE_ENDPOINTS.",
                id="scriptripper.W102"))
    return warnings


@register(Tags.database)
def check_profile_model_prices(app_configs, databases=None, **kwargs):
    """A profile whose default model has no price here (accepted under ALLOW_UNLISTED_MODELS)."""
    try:
        rows = list(AnalysisProfile.objects.exclude(default_model="").exclude(default_provider="")
                    .values_list("default_provider", "default_model").distinct())
    except DatabaseError:
        return []
    return [
        Warning(f"Analysis profiles default to {provider}/{model}, which has no price in genai-prices "
                f"{prices_version()} or the overlay: its jobs are billed 0 and marked price_unknown.",
                hint="Choose a listed model, or upgrade genai-prices (README: upgrading prices).",
                id="scriptripper.W103")
        for provider, model in rows if not price_known(provider, model)
    ]


@register()
def check_model_fallbacks(app_configs, **kwargs):
    """MODEL_FALLBACKS names models that cannot run here: every job on the model it is keyed by would be refused
    (a 400 naming fallback_models[i]) until it is fixed."""
    problems = []
    for model, chain in settings.MODEL_FALLBACKS.items():
        for index, entry in enumerate(chain):
            where = f"MODEL_FALLBACKS[{model!r}][{index}] ({entry['provider']} {entry['model']})"
            if entry["provider"] not in provider_names():
                problems.append(Error(f"{where}: unknown provider", id="scriptripper.E104",
                                      hint=f"Choose one of {', '.join(provider_names())}."))
                continue
            try:
                resolve_model(entry["provider"], entry["model"], allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                              context_overrides=context_overrides(), endpoints=endpoints())
            except ValueError as exc:
                problems.append(Error(f"{where}: {exc}", id="scriptripper.E104"))
                continue
            if not provider_configured(entry["provider"]):
                problems.append(Warning(f"{where}: {provider_key_setting(entry['provider'])} is not set, so jobs on "
                                        f"{model} that name no fallback models are refused.", id="scriptripper.W104"))
    return problems
