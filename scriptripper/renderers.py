"""The API's JSON renderer: DRF's, with Decimals written as plain JSON numbers.

Costs are exact Decimals. DRF's encoder turns a Decimal into a float, and Python writes
small floats in exponent form, so a cost of $0.0000771 reached clients as `7.71e-05`.
Here a Decimal is written from its own digits: `0.0000771` (no exponent, no trailing
zeros, never rounded through a float).

json cannot emit a raw number for a custom type, so the encoder writes each Decimal as a
string between two copies of a random per-process marker, and the renderer removes the
quotes and markers afterwards. No text a client or a model sends can contain the marker:
it is 32 random hex digits, generated at start and never shown.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Any

from rest_framework import renderers
from rest_framework.utils import encoders

_MARK = secrets.token_hex(16)
_MARKED_NUMBER = re.compile(rb'"' + _MARK.encode() + rb"(-?[0-9]+(?:\.[0-9]+)?)" + _MARK.encode() + rb'"')


def plain_number(value: Decimal) -> str:
    """A finite Decimal as JSON number text: digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


class DecimalNumberEncoder(encoders.JSONEncoder):
    def default(self, obj: Any) -> Any:
        if isinstance(obj, Decimal) and obj.is_finite():
            return f"{_MARK}{plain_number(obj)}{_MARK}"
        return super().default(obj)


class JSONRenderer(renderers.JSONRenderer):
    encoder_class = DecimalNumberEncoder

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        body = super().render(data, accepted_media_type, renderer_context)
        return _MARKED_NUMBER.sub(rb"\1", body)
