"""`GET /api/v1/`: a short index of the API (no token needed), so the URL the start banner prints answers."""

from __future__ import annotations

import re

from django.urls import get_resolver
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

API_PREFIX = "^api/v1/"
INDEX_SCHEMA = inline_serializer("ApiIndex", fields={
    "name": serializers.CharField(),
    "version": serializers.CharField(),
    "authentication": serializers.CharField(),
    "schema": serializers.CharField(),
    "docs": serializers.CharField(),
    "endpoints": serializers.ListField(child=serializers.CharField()),
})


def api_endpoints() -> list[str]:
    """The /api/v1/ routes of the URLconf as path templates ("/api/v1/jobs/{job_id}"): the routes are the list."""
    paths = []
    for pattern in get_resolver().url_patterns:  # the ROOT_URLCONF, which imports this module
        regex = getattr(pattern.pattern, "_regex", "")
        if not regex.startswith(API_PREFIX) or regex == f"{API_PREFIX}?$":
            continue
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", regex.removeprefix("^").removesuffix("/?$"))
        paths.append(f"/{route}")
    return paths


class ApiIndexApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(responses={200: INDEX_SCHEMA}, summary="This index: the schema, the docs and the endpoints")
    def get(self, request: Request) -> Response:
        return Response({
            "name": "ScriptRipper API",
            "version": "v1",
            "authentication": "Authorization: Bearer <token> (python manage.py createtoken USERNAME)",
            "schema": request.build_absolute_uri("/api/schema/"),
            "docs": request.build_absolute_uri("/api/docs/"),
            "endpoints": api_endpoints(),
        })
