"""Cursor pagination of the API's lists: newest first, a cursor stays valid while new rows arrive (no page drift,
no OFFSET scans), `limit` per page, and a malformed cursor is a 400 on `cursor`."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from scriptripper.errors import validation_error


class ApiCursorPagination(CursorPagination):
    """A subclass names its ordering and the settings of its page size and largest page."""

    page_size_query_param = "limit"
    page_size_setting: str
    max_page_size_setting: str

    def get_page_size(self, request):
        # Read at request time (not class definition) so the settings apply as configured.
        self.page_size = getattr(settings, self.page_size_setting)
        self.max_page_size = getattr(settings, self.max_page_size_setting)
        return super().get_page_size(request)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            # DRF answers a bad cursor with 404; it is a malformed parameter, not a missing object.
            raise validation_error("cursor", "Invalid cursor: pass back the `next` or `previous` link as given.") from None

    def page_response(self, queryset, request: Request, view, serializer_class,
                      prepare: Callable[[list], list] = list) -> Response:
        """One page of `queryset` as `serializer_class` renders `{"next", "previous", "results"}`; `prepare`
        completes the page's rows (counts read for the page only, say)."""
        page = self.paginate_queryset(queryset, request, view=view)
        return Response(serializer_class({"next": self.get_next_link(), "previous": self.get_previous_link(),
                                          "results": prepare(list(page))}).data)

    @classmethod
    def parameters(cls, items: str) -> list[OpenApiParameter]:
        """The OpenAPI query parameters of a page (beside the list's filters)."""
        return [OpenApiParameter("cursor", str, description="from the `next` / `previous` links"),
                OpenApiParameter("limit", int, description=f"{items} per page (default {cls.page_size_setting}, at "
                                                           f"most {cls.max_page_size_setting})")]
