"""Writes on analysis profiles. Staff alone change the built-in ones."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from analysis.clients import endpoints
from analysis.engine.catalogue import UnknownModelError, UnknownProviderError, resolve_model
from analysis.engine.processing import mode_refusal
from analysis.models import AnalysisProfile
from scriptripper.errors import ServiceError, validation_error

# Fields a client may set; `owner` is decided by the service, never by input.
PROFILE_FIELDS = ("name", "description", "system_prompt", "tasks", "default_provider", "default_model", "language",
                  "processing", "fallback")


def _forbid_builtin_change(*, profile: AnalysisProfile, user) -> None:
    if profile.is_builtin and not user.is_staff:
        raise ServiceError("Built-in profiles can be changed by staff only; create a profile of your own instead.",
                           code="permission_denied")


def _check_defaults(profile: AnalysisProfile) -> None:
    """The default model must be one the default provider offers (a PATCH may change either alone)."""
    if profile.default_model and not profile.default_provider:
        raise validation_error("default_provider", "A default model needs a default provider.")
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
                   fallback: str = "") -> AnalysisProfile:
    """A profile owned by `owner` (None: built in; callers check that only staff get there)."""
    return _save(AnalysisProfile(owner=owner, name=name, tasks=tasks, description=description,
                                 system_prompt=system_prompt, default_provider=default_provider,
                                 default_model=default_model, language=language, processing=processing,
                                 fallback=fallback))


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
