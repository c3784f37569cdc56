"""The API's JSON parser: DRF's, plus the checks that keep hostile JSON from becoming a 500.

- nesting deeper than MAX_JSON_DEPTH (json raises RecursionError on very deep
  input, which DRF does not catch; moderately deep input is refused too, before
  any serializer or JSON column has to walk it);
- NUL characters and lone surrogates ("\\u0000", "\\ud800") anywhere, in keys or
  values: PostgreSQL cannot store either in text or jsonb, so they would fail at
  the INSERT, as a 500, instead of here, as a 400.
"""

from __future__ import annotations

import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32


def _check_document(data) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_string(value)
        elif isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_string(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise ParseError("JSON parse error - strings must not contain NUL (\\u0000) characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("JSON parse error - strings must be valid Unicode (a lone surrogate such as \\ud800 is not).") from None


def loads_checked(text: str):
    """json.loads with the same checks as the parser (for JSON sent inside a form field); ValueError if refused."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    try:
        _check_document(data)
    except ParseError as exc:
        raise ValueError(str(exc.detail)) from None
    return data


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.") from None
        _check_document(data)
        return data


# Submissions (a transcript, a job) take JSON, or a multipart form with the transcript as `file` (and JSON-valued
# fields such as `tasks` as JSON strings). Every other endpoint stays JSON only (415 otherwise). No urlencoded form:
# what `curl -d '{...}'` sends without a Content-Type is JSON read as a form, which is a 415 saying to send JSON.
SUBMISSION_PARSERS = [JSONParser, parsers.MultiPartParser]
