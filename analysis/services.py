"""Writes on analysis profiles. Staff alone change the built-in ones."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from analysis.analyze import context_overrides
from analysis.clients import endpoints, provider_error
from analysis.engine import structured
from analysis.engine.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.engine.fallbacks import chain_processing, chain_refusal
from analysis.engine.model_info import ModelInfo
from analysis.engine.processing import mode_refusal
from analysis.models import AnalysisProfile
from scriptripper.errors import ServiceError, field_errors, validation_error

# Fields a client may set; `owner` is decided by the service, never by input.
PROFILE_FIELDS = ("name", "description", "system_prompt", "tasks", "default_provider", "default_model", "language",
                  "processing", "fallback", "fallback_models")


def structured_refusal(info: ModelInfo, tasks: list[tuple[str, str]]) -> str | None:
    """Why this model cannot answer these tasks (one with a schema or citations, and a model without structured
    output); None when it can."""
    if info.structured_output:
        return None
    for name, prompt in tasks:
        if structured.decode_task(prompt).structured:
            return (f"{info.name} takes no JSON Schema through its provider's structured output, which task {name!r} "
                    f"needs (a schema or citations); choose another model (GET /api/v1/models: structured_output).")
    return None


def fallback_chain_check(chain: list[dict], *, provider: str, info: ModelInfo | None, processing: str,
                         fallback: str, tasks: list[tuple[str, str]]) -> list[dict]:
    """The fallback chain checked entry by entry like the job's own model (`provider` and `info`; None for a profile
    without a default model): provider known and configured, model served and priced or an endpoint's, the job's
    processing mode, structured output for its tasks. Each model comes back as the id it resolved to. A
    ServiceError naming `fallback_models[i]` for every entry at fault."""
    errors: dict[str, list[str]] = {}
    checked: list[dict] = []
    seen = {(provider, info.name)} if info is not None else set()
    for index, entry in enumerate(chain):
        field, name = f"fallback_models[{index}]", entry["provider"]
        if (problem := provider_error(name)) is not None:
            errors[field] = [problem]
            continue
        try:
            member = resolve_model(name, entry["model"], allow_unlisted=settings.ALLOW_UNLISTED_MODELS,
                                   context_overrides=context_overrides(), endpoints=endpoints())
        except (UnknownModelError, UnknownProviderError) as exc:
            errors[field] = [str(exc)]
            continue
        if (name, member.name) in seen:
            errors[field] = [f"{name} {member.name} is already in the chain (or is the job's own model)."]
        elif chain_processing(processing=processing, fallback=fallback, provider=name, info=member) is None:
            errors[field] = [chain_refusal(processing=processing, info=member)]
        elif refusal := structured_refusal(member, tasks):
            errors[field] = [refusal]
        seen.add((name, member.name))
        checked.append({"provider": name, "model": member.name})
    if errors:
        raise field_errors(errors)
    return checked


def _forbid_builtin_change(*, profile: AnalysisProfile, user) -> None:
    if profile.is_builtin and not user.is_staff:
        raise ServiceError("Built-in profiles can be changed by staff only; create a profile of your own instead.",
                           code="permission_denied")


def _check_defaults(profile: AnalysisProfile) -> None:
    """The default model must be one the default provider offers (a PATCH may change either alone); the fallback
    chain is checked as at submit, against the profile's default model, mode and tasks."""
    if profile.default_model and not profile.default_provider:
        raise validation_error("default_provider", "A default model needs a default provider.")
    info = None
    if profile.default_provider and profile.default_model:
        try:
            info = resolve_model(profile.default_provider, profile.default_model,
                          allow_unlisted=settings.ALLOW_UNLISTED_MODELS, endpoints=endpoints())
        except (UnknownModelError, UnknownProviderError) as exc:
            raise validation_error("default_model", str(exc)) from None
        if profile.processing and profile.processing != "standard":
            # A mode the default model does not offer is refused here as at submit, never priced as standard.
            refusal = (mode_refusal(provider=profile.default_provider, info=info, processing=profile.processing)
                       if profile.default_provider and profile.default_model else None)
            if refusal:
                raise validation_error("processing", refusal)
    if profile.fallback_models:
        profile.fallback_models = fallback_chain_check(
            profile.fallback_models, provider=profile.default_provider, info=info,
            processing=profile.processing or "standard", fallback=profile.fallback or "standard",
            tasks=profile.task_pairs())


def _save(profile: AnalysisProfile) -> AnalysisProfile:
    _check_defaults(profile)
    try:
        # The savepoint keeps an enclosing transaction usable after the IntegrityError.
        with transaction.atomic():
            profile.save()
    except IntegrityError:
        owner = "built-in" if profile.is_builtin else "your"
        raise validation_error("name", f"There is already a {owner} profile named {profile.name!r}.") from None
    return profile


def profile_create(*, owner, name: str, tasks: list[dict[str, str]], description: str = "", system_prompt: str = "",
                   default_provider: str = "", default_model: str = "", language: str = "", processing: str = "",
                   fallback: str = "", fallback_models: list[dict] | None = None) -> AnalysisProfile:
    """A profile owned by `owner` (None: built in; callers check that only staff get there)."""
    return _save(AnalysisProfile(owner=owner, name=name, tasks=tasks, description=description,
                                 system_prompt=system_prompt, default_provider=default_provider,
                                 default_model=default_model, language=language, processing=processing,
                                 fallback=fallback, fallback_models=fallback_models))


def profile_update(*, profile: AnalysisProfile, user, data: dict[str, Any]) -> AnalysisProfile:
    """Change the given fields (a PATCH gives some, a PUT all)."""
    _forbid_builtin_change(profile=profile, user=user)
    for key, value in data.items():
        if key in PROFILE_FIELDS:
            setattr(profile, key, value)
    return _save(profile)


def profile_delete(*, profile: AnalysisProfile, user) -> None:
    _forbid_builtin_change(profile=profile, user=user)
    # Jobs keep the profile's name (Job.profile_name) and their own copy of its tasks.
    profile.delete()
