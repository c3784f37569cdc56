"""Input and output shapes of the account endpoints (tokens, account)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

MAX_TOKEN_DAYS = 3650


class TokenSerializer(serializers.Serializer):
    """A token as its owner sees it: never the secret, never the digest."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The first characters after `sr_`: enough to tell tokens apart.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField(source="is_active")


class CreatedTokenSerializer(TokenSerializer):
    token = serializers.CharField(help_text="The secret, shown this once: send it as `Authorization: Bearer <token>`.")


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="When the token stops working (ISO 8601). Omit for no expiry.")
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                               max_value=MAX_TOKEN_DAYS,
                                               help_text="Alternative to expires_at: days from now.")

    def validate_expires_at(self, value):
        if value is not None:
            if value <= timezone.now():
                raise serializers.ValidationError("must be in the future")
            if value > timezone.now() + timedelta(days=MAX_TOKEN_DAYS):
                raise serializers.ValidationError(f"must be within {MAX_TOKEN_DAYS} days")
        return value

    def validate(self, attrs):
        days = attrs.pop("expires_in_days", None)
        if days is not None:
            if attrs.get("expires_at") is not None:
                raise serializers.ValidationError({"expires_in_days": ["give expires_at or expires_in_days, not both"]})
            attrs["expires_at"] = timezone.now() + timedelta(days=days)
        return attrs
