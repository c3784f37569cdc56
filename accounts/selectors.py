"""Reads on accounts, and the account document of `GET /api/v1/account`."""

from __future__ import annotations

from django.conf import settings

from accounts.models import User
from accounts.services import spend_summary


def account_document(user: User) -> dict:
    """What `GET /api/v1/account` answers, built in this one place: add account figures
    (spend this month, budget left, ...) here and every account endpoint shows them."""
    return {
        "username": user.username,
        "plan": user.plan,
        # Shown to its owner only: it verifies the Standard Webhooks signatures of job callbacks.
        "webhook_secret": user.webhook_secret,
        "unlimited": user.unlimited,
        "spending": spending_document(user),
        "rate_limits": rate_limits_document(user),
    }


def spending_document(user: User) -> dict:
    """Spend this month (real costs, from the ledger) and what is left of the monthly budget."""
    summary = spend_summary(user)
    return {
        "currency": "USD",
        "spent_this_month": summary["spent_this_month"],
        "monthly_budget": summary["monthly_budget"],  # null: no limit
        "remaining": summary["remaining"],  # null: no limit
        "period_start": summary["period_start"],
        "resets_at": summary["resets_at"],
    }


def rate_limits_document(user: User) -> dict:
    """The request rates of the user's plan, as "N/period" (null: not limited)."""
    names = {1: "s", 60: "min", 3600: "hour", 86400: "day"}
    rates = settings.THROTTLE_RATES.get(user.plan) or settings.THROTTLE_RATES["free"]
    return {scope: None if user.unlimited or rate is None else f"{rate[0]}/{names[rate[1]]}"
            for scope, rate in rates.items()}
