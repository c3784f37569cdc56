"""Costs are Decimals: the API writes them as plain JSON numbers from their own digits."""

from __future__ import annotations

import json
from decimal import Decimal

from scriptripper.renderers import JSONRenderer


def render(data) -> bytes:
    return JSONRenderer().render(data)


def test_decimals_are_plain_numbers_without_exponent_or_float_rounding():
    body = render({"cost": Decimal("0.00007710"), "zero": Decimal("0E-8"), "tiny": Decimal("0.00000001"),
                   "big": Decimal("1E+3"), "negative": Decimal("-12.50000000"), "many": [Decimal("0.1")] * 2})
    assert body == (b'{"cost":0.0000771,"zero":0,"tiny":0.00000001,"big":1000,"negative":-12.5,'
                    b'"many":[0.1,0.1]}')
    assert json.loads(body, parse_float=Decimal)["cost"] == Decimal("0.0000771")


def test_text_that_looks_like_a_number_stays_text():
    # Only the encoder's own (secret) markers are unquoted: strings, even numeric ones, are left alone.
    data = {"output": '"0.5"', "note": "0.00007710", "cost": Decimal("0.5")}
    assert json.loads(render(data)) == {"output": '"0.5"', "note": "0.00007710", "cost": 0.5}
