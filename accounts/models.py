from __future__ import annotations

import base64
import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


def new_webhook_secret() -> str:
    # Standard Webhooks secrets are base64 with a "whsec_" prefix.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class User(AbstractUser):
    class Plan(models.TextChoices):
        FREE = "free", "Free"
        PRO = "pro", "Pro"

    plan = models.CharField(max_length=10, choices=Plan.choices, default=Plan.FREE)
    # None: the plan's default budget applies (settings.PLAN_MONTHLY_BUDGETS).
    # Sub-cent precision: a budget of $0.005 must not silently become $0.01 or $0.00.
    monthly_budget = models.DecimalField(max_digits=16, decimal_places=6, null=True, blank=True)
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret)
    # Exempt from the API throttles and the monthly spending limit (benchmarks, internal
    # tools). A job's own `max_cost` still applies.
    unlimited = models.BooleanField(default=False)

    @property
    def is_pro(self) -> bool:
        return self.plan == self.Plan.PRO


class ApiToken(models.Model):
    """An API token. Only a digest is stored; the secret is shown once, at creation.

    The visible prefix lets a user tell tokens apart and lets authentication find
    the row with an index lookup before the constant-time digest comparison.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class SpendEntry(models.Model):
    """The spend ledger: one row per billed provider outcome (a task's cost).

    `reference` is unique so that recording the same task's cost twice (a retried
    write, a re-delivered job) cannot bill the user twice.
    """

    # Every task's outcome inserts a row, so no index is kept that another one covers: the user's
    # (user, created_at) serves lookups by user, and the unique constraint (unlike unique=True) comes
    # without the LIKE-pattern index Django adds for a unique text column, which no query uses.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spend_entries",
                             db_index=False)
    reference = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"])]
        constraints = [models.UniqueConstraint(fields=["reference"], name="unique_spend_reference")]
