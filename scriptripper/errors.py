"""The one error shape: {"error": {"code", "message", "fields"?}}.

Every API error goes through `api_exception_handler` (DRF's EXCEPTION_HANDLER),
and the Django-level handlers below cover what happens outside DRF (404 on an
unknown URL, a 500). Clients and tests rely on this shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A business rule said no: raised by services, which know nothing of HTTP.

    `code` is the error's code in the one shape; `api_exception_handler` maps it to the status
    (STATUS_BY_CODE), so a service never carries an HTTP status.
    """

    code = "validation_error"

    def __init__(self, message: str, *, code: str | None = None,
                 fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        self.fields = fields


class Conflict(ServiceError):
    code = "conflict"


class NotFoundError(ServiceError):
    """The object is gone: e.g. deleted by a concurrent request between lookup and change."""

    code = "not_found"


class BudgetExceeded(ServiceError):
    code = "budget_exceeded"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class ServiceUnavailable(ServiceError):
    code = "service_unavailable"


# The one place where a service error's code becomes an HTTP status.
STATUS_BY_CODE: dict[str, int] = {
    "validation_error": status.HTTP_400_BAD_REQUEST,
    "budget_exceeded": status.HTTP_402_PAYMENT_REQUIRED,
    "permission_denied": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "conflict": status.HTTP_409_CONFLICT,
    "payload_too_large": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "service_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
}


# A backing service that does not answer: the request may well succeed in a moment, so 503 with
# Retry-After (never a 500, which says "bug"). OperationalError/InterfaceError: PostgreSQL refused
# the connection, dropped it, or is shutting down; the Redis ones: refused or timed out.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, RedisConnectionError,
                                              RedisTimeoutError)


def outage(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for a database or Redis outage, or None when `exc` is not one."""
    if isinstance(exc, OUTAGE_ERRORS) and not _is_data_error(exc):
        # The exception's own text names hosts, ports and users: the log has it, the client does not.
        logger.warning("backing service unavailable: %s: %s", type(exc).__name__, exc)
        what = "The database" if isinstance(exc, DatabaseError) else "Redis"
        return ServiceUnavailable(f"{what} is unavailable; try again shortly.")
    return None


def _is_data_error(exc: BaseException) -> bool:
    # psycopg raises OperationalError subclasses for a few statement-level errors (a query canceled
    # by statement_timeout, a lock timeout); those are about the request, not an outage.
    cause = exc.__cause__
    return type(cause).__name__ in {"QueryCanceled", "LockNotAvailable"}


def outage_response(error: ServiceUnavailable) -> JsonResponse:
    response = JsonResponse(error_body(error.code, error.message), status=503)
    response["Retry-After"] = str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    return response


def validation_error(field: str, message: str) -> ServiceError:
    return ServiceError(message, code="validation_error", fields={field: [message]})


def field_errors(fields: dict[str, list[str]]) -> ServiceError:
    """Bad fields found by a service, worded as DRF words a serializer's ("field: message")."""
    return ServiceError(_validation_message(fields), code="validation_error", fields=fields)


_CODES_BY_CLASS: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "parse_error"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
    (exceptions.ValidationError, "validation_error"),
]


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF nests errors (lists of dicts for list fields); flatten to "a.b": [messages]."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten_fields(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    for k, v in _flatten_fields(item, f"{prefix}[{index}]").items():
                        out.setdefault(k, []).extend(v)
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _validation_message(fields: dict[str, list[str]]) -> str:
    name, messages = next(iter(fields.items()))
    if name == "non_field_errors":
        return messages[0]
    return f"{name}: {messages[0]}"


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is larger than the limit of this server.")
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        # ObjectDoesNotExist: the row went away between the view's lookup and the service's
        # (a concurrent DELETE); it is gone, so 404, not a 500.
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif (unavailable := outage(exc)) is not None:
        exc = unavailable

    # Imported here: rest_framework.views loads the authentication classes from settings,
    # and services that raise ServiceError are imported by those classes (import cycle).
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    if isinstance(exc, ServiceError):
        set_rollback()
        response = Response(error_body(exc.code, exc.message, exc.fields), status=STATUS_BY_CODE[exc.code])
    else:
        response = drf_exception_handler(exc, context)
        if response is None:
            # Unexpected: let Django's 500 handler (which also answers in our shape) take it,
            # after logging with the traceback.
            return None
        response.data = drf_error_body(exc)
        if isinstance(exc, exceptions.UnsupportedMediaType):
            response.data["error"]["message"] = unsupported_media_type_message(exc, context.get("view"))
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
        response["Retry-After"] = str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    return response


def unsupported_media_type_message(exc: exceptions.UnsupportedMediaType, view: Any) -> str:
    """What to send instead, from the endpoint's parsers: `curl -d '{...}'` without a Content-Type
    sends a urlencoded form, which reads as anything but the JSON it is."""
    accepted = {parser.media_type for parser in getattr(view, "parser_classes", ())}
    message = f"{exc.detail} Send JSON with the header Content-Type: application/json"
    if "multipart/form-data" in accepted:
        message += " (or multipart/form-data, with a transcript file as `file`)"
    return message + "."


def drf_error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """The one shape for an error DRF raised (validation, authentication, throttling, ...)."""
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        return error_body("validation_error", _validation_message(fields), fields)
    code = next((c for cls, c in _CODES_BY_CLASS if isinstance(exc, cls)), None) or exc.default_code
    detail = exc.detail
    message = str(detail) if not isinstance(detail, (dict, list)) else "The request could not be processed."
    return error_body(code, message)


def validation_message(exc: exceptions.ValidationError) -> str:
    """A DRF validation error as one sentence (the first field's first message), for the CLI."""
    return _validation_message(_flatten_fields(exc.detail))


@csrf_exempt  # no cookie session here: a POST to an unknown path is a 404, not a CSRF failure page
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Every /api/ path that no route matches (also a job id that is not a UUID), whatever the method.

    A view, not handler404: Django shows its HTML debug page instead of handler404 when DEBUG is on.
    """
    return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}; see /api/v1/ and /api/docs/."),
                        status=404)


class ApiErrorMiddleware:
    """What escapes the views under /api/ answers in the one shape, also with DEBUG on.

    DRF's handler (above) covers errors raised inside a DRF view; this covers what a view lets
    escape (a plain view, an exception DRF re-raises) before Django's handler, which with DEBUG on
    renders an HTML traceback page.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if (unavailable := outage(exc)) is not None:
            return outage_response(unavailable)
        if isinstance(exc, Http404):
            return api_not_found(request)
        logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return json_500(request)


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(error_body("server_error", "Internal server error."), status=500)


def json_400(request, exception=None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("payload_too_large", "The request body is larger than the limit of this server."), status=413)
    return JsonResponse(error_body("parse_error", "Bad request."), status=400)


def json_403(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You do not have permission to perform this action."), status=403)
