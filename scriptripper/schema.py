"""OpenAPI: the one error shape, and the error responses every API operation can give.

Views declare the statuses that are specific to them (`error_responses(402, 409)`);
`add_standard_error_responses` (a drf-spectacular post-processing hook) adds the
ones that every operation can answer whatever its view says, so a new endpoint
cannot ship a schema that the fuzzer (schemathesis) finds incomplete:

- 401 on every authenticated operation, 429 (with Retry-After) on every operation
  behind the throttles;
- 400, 413 and 415 on every operation that takes a request body;
- 404 on every operation with a path parameter;
- 414 (from the HTTP server, not Django) on every operation with query parameters.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ERROR_SCHEMA = inline_serializer("Error", fields={
    "error": inline_serializer("ErrorBody", fields={
        "code": serializers.CharField(),
        "message": serializers.CharField(),
        "fields": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
    }),
})

ERROR_DESCRIPTIONS = {
    400: "Bad input (`validation_error`, `parse_error`)",
    401: "No, invalid, expired or revoked token (`not_authenticated`, `authentication_failed`)",
    402: "The monthly spending limit would be passed (`budget_exceeded`)",
    403: "Staff only, or a built-in object you may see but not change (`permission_denied`)",
    404: "Missing, deleted, or not yours (`not_found`)",
    409: "Not possible in the object's current state (`conflict`)",
    413: "Request body or transcript over its limit (`payload_too_large`)",
    415: "Only application/json bodies are accepted (`unsupported_media_type`)",
    429: "Too many requests (`throttled`); see Retry-After",
    503: "A backing service is unavailable (`service_unavailable`)",
}

_ERROR_COMPONENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}

URI_TOO_LONG: dict[str, Any] = {
    "description": "Request line longer than the HTTP server accepts (answered by the server, as HTML)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}

RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"},
                    "required": True},
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ERROR_SCHEMA, description=ERROR_DESCRIPTIONS.get(code, "")) for code in codes}


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return response


def add_standard_error_responses(result: dict[str, Any], generator, **kwargs) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR_COMPONENT)
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            codes = [429]
            if operation.get("security") != [{}] and operation.get("security") != []:
                codes.append(401)
            if "requestBody" in operation or method in {"post", "put", "patch"}:
                codes += [400, 413, 415]
            if "{" in path:
                codes.append(404)
            for code in codes:
                responses.setdefault(str(code), _error_response(code))
            if any(p.get("in") == "query" for p in operation.get("parameters", [])):
                # A query string longer than the HTTP server's request-line limit (gunicorn: 4094 bytes)
                # is refused by the server itself, before Django, in its own format.
                responses.setdefault("414", URI_TOO_LONG)
            # DRF sends Retry-After with every 429.
            responses["429"].setdefault("headers", {}).update(RETRY_AFTER_HEADER)
            operation["responses"] = dict(sorted(responses.items()))
    return result
