"""Request size limit for the API, answered in the one error shape.

Django only notices an oversized body when something reads it (RequestDataTooBig,
raised lazily from request.body or request.POST), and a multipart upload's files
are not counted against DATA_UPLOAD_MAX_MEMORY_SIZE at all. Checking the declared
Content-Length up front gives every /api/ request over MAX_REQUEST_BYTES the same
413, whatever its content type and whichever view it was meant for, before any
byte of it is read.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from scriptripper.errors import error_body


class RequestSizeLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > settings.MAX_REQUEST_BYTES:
                return JsonResponse(error_body(
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit is {settings.MAX_REQUEST_BYTES} bytes."),
                    status=413)
        return self.get_response(request)
