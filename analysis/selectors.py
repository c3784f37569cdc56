"""Reads on analysis profiles: what a user may see, and finding one by name or id."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from analysis.models import AnalysisProfile


def profiles_visible_to(user) -> QuerySet[AnalysisProfile]:
    """The user's own profiles and the built-in ones (never another user's)."""
    return AnalysisProfile.objects.filter(Q(owner=user) | Q(owner__isnull=True))


def profile_for_user(*, user, profile_id) -> AnalysisProfile | None:
    """A profile by id if the user may see it; None otherwise (the API answers 404, never 403)."""
    try:
        return profiles_visible_to(user).select_related("owner").get(id=int(profile_id))
    except (AnalysisProfile.DoesNotExist, ValueError, TypeError, OverflowError):
        return None


def profile_lookup(*, user, ref: str | int) -> AnalysisProfile | None:
    """A visible profile by id (digits) or by name.

    By name, the user's own profile wins over a built-in of the same name, so
    a user can shadow `meeting-notes` with a version of their own. Names are
    never all digits (the profile serializer refuses them), so "42" can only
    mean an id.
    """
    ref = str(ref).strip()
    if not ref:
        return None
    if ref.isdigit():
        return profile_for_user(user=user, profile_id=ref)
    own = AnalysisProfile.objects.filter(owner=user, name=ref).first()
    if own is not None:
        return own
    return AnalysisProfile.objects.filter(owner__isnull=True, name=ref).first()
