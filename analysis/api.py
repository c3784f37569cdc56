"""The analysis endpoints: the model catalogue (which models each provider offers, their limits and
prices) and the analysis profiles (saved sets of tasks)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.clients import provider_names, unknown_provider
from analysis.engine.catalogue import prices_version
from analysis.selectors import model_listing, profile_for_user, profiles_visible_to
from analysis.serializers import (
    ModelListOutputSerializer, ProfileInputSerializer, ProfileListSerializer, ProfileOutputSerializer,
)
from analysis.services import profile_create, profile_delete, profile_update
from scriptripper.errors import validation_error
from scriptripper.schema import error_responses


class ModelListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("provider", str, required=False,
                             description="only this provider's (or configured endpoint's) models: gemini, openai, "
                                         "anthropic or an endpoint name"),
            OpenApiParameter("search", str, required=False,
                             description="only models whose id, alias or display name contains this (any case)"),
            OpenApiParameter("include_retired", bool, required=False,
                             description="also list models past their retirement day (refused at submit)"),
        ],
        responses={200: ModelListOutputSerializer, **error_responses(400, 401)},
        summary="Every usable model: context window, output limit, USD prices per million tokens, tiers, retirement",
    )
    def get(self, request: Request) -> Response:
        provider = request.query_params.get("provider")
        if provider is not None:
            provider = provider.strip().lower()
            if provider not in provider_names():
                raise validation_error("provider", unknown_provider(provider))
        search = (request.query_params.get("search") or "").strip().lower()
        include_retired = (request.query_params.get("include_retired") or "").strip().lower() in ("1", "true", "yes")
        models = model_listing(provider=provider, search=search, include_retired=include_retired)
        return Response(ModelListOutputSerializer({"models": models, "prices_version": prices_version()}).data)


# --- Profiles ---------------------------------------------------------------------------

def _visible_profile(request: Request, profile_id: int):
    profile = profile_for_user(user=request.user, profile_id=profile_id)
    if profile is None:
        # Another user's profile is "not found", never "forbidden": its existence is not ours to reveal.
        raise NotFound("No such profile.")
    return profile


class ProfileListCreateApi(APIView):
    @extend_schema(operation_id="profiles_list", responses={200: ProfileListSerializer, **error_responses(401)},
                   summary="Your analysis profiles and the built-in ones")
    def get(self, request: Request) -> Response:
        profiles = list(profiles_visible_to(request.user))
        return Response(ProfileListSerializer({"count": len(profiles), "results": profiles}).data)

    @extend_schema(request=ProfileInputSerializer,
                   responses={201: ProfileOutputSerializer, **error_responses(400, 401, 415)},
                   summary="Create an analysis profile: a named, reusable set of tasks")
    def post(self, request: Request) -> Response:
        serializer = ProfileInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile = profile_create(owner=request.user, **serializer.validated_data)
        return Response(ProfileOutputSerializer(profile).data, status=status.HTTP_201_CREATED)


class ProfileDetailApi(APIView):
    @extend_schema(operation_id="profiles_retrieve", responses={200: ProfileOutputSerializer, **error_responses(401, 404)},
                   summary="One analysis profile (yours or built in)")
    def get(self, request: Request, profile_id: int) -> Response:
        return Response(ProfileOutputSerializer(_visible_profile(request, profile_id)).data)

    @extend_schema(request=ProfileInputSerializer,
                   responses={200: ProfileOutputSerializer, **error_responses(400, 401, 403, 404, 415)},
                   summary="Replace a profile (built-in profiles: staff only)")
    def put(self, request: Request, profile_id: int) -> Response:
        return self._update(request, profile_id, partial=False)

    @extend_schema(request=ProfileInputSerializer(partial=True),
                   responses={200: ProfileOutputSerializer, **error_responses(400, 401, 403, 404, 415)},
                   summary="Change some fields of a profile (built-in profiles: staff only)")
    def patch(self, request: Request, profile_id: int) -> Response:
        return self._update(request, profile_id, partial=True)

    def _update(self, request: Request, profile_id: int, *, partial: bool) -> Response:
        profile = _visible_profile(request, profile_id)
        serializer = ProfileInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        profile = profile_update(profile=profile, user=request.user, data=serializer.validated_data)
        return Response(ProfileOutputSerializer(profile).data)

    @extend_schema(responses={204: None, **error_responses(401, 403, 404)},
                   summary="Delete a profile (built-in profiles: staff only)")
    def delete(self, request: Request, profile_id: int) -> Response:
        profile_delete(profile=_visible_profile(request, profile_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
