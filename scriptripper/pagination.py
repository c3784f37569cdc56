"""Cursor pagination of the API's lists: newest first, a cursor stays valid while new rows arrive (no page drift,
no OFFSET scans), `limit` per page, and a malformed cursor is a 400 on `cursor`."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

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
