"""Output field types shared by the apps' output serializers."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers
from rest_framework.fields import SkipField

from scriptripper.renderers import plain_number

# USD to 8 places: every cost the API shows (the renderer writes it as a JSON number, scriptripper/renderers.py).
MONEY_DECIMAL_PLACES = 8
MONEY = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)


def money(value: Decimal | None) -> Decimal:
    return (value or Decimal("0")).quantize(MONEY)


def usd(value: Decimal | None) -> str:
    """Money as people read it, the same exact figure wherever it is shown (admin pages, charts, reports):
    $0.00, $1.50, $0.0000771 (the stored digits, never 0E-8 or 7.71E-5, never rounded to the cent)."""
    value = money(value)
    if not value:
        return "$0.00"
    text = plain_number(value)
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


class MoneyField(serializers.DecimalField):
    def __init__(self, **kwargs) -> None:
        super().__init__(max_digits=None, decimal_places=MONEY_DECIMAL_PLACES, coerce_to_string=False, **kwargs)


class BlankAsNullCharField(serializers.CharField):
    """A text column stored as "" when empty, shown as null."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return super().to_representation(value) if value else None


class RoundedFloatField(serializers.FloatField):
    def __init__(self, *, digits: int, **kwargs) -> None:
        self.digits = digits
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return round(value, self.digits)


class OmitEmpty:
    """An output field whose key is left out when its value is empty (a false flag, no text)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, **kwargs)

    def get_attribute(self, instance):
        value = super().get_attribute(instance)
        if not value:
            raise SkipField()
        return value


class OptionalBooleanField(OmitEmpty, serializers.BooleanField):
    pass


class OptionalCharField(OmitEmpty, serializers.CharField):
    pass
