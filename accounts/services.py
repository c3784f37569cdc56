from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import ApiToken, SpendEntry, User, new_webhook_secret
from scriptripper.errors import BudgetExceeded
from scriptripper.output_fields import money

TOKEN_PREFIX_LEN = 8
TOKEN_BRAND = "sr_"
# Staff users' admin permissions come from this group (created by accounts/migrations/0004).
OPERATORS_GROUP = "operators"


def _digest(secret: str) -> str:
    # The token carries 256 bits of randomness, so a keyed fast hash is enough
    # (no need for a slow password hash); SECRET_KEY as the key means a leaked
    # database alone does not let anyone test guesses offline.
    return hmac.new(settings.SECRET_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CreatedToken:
    token: ApiToken
    secret: str  # shown once; never stored


def api_token_create(*, user: User, name: str = "", expires_at: datetime | None = None) -> CreatedToken:
    prefix = secrets.token_hex(TOKEN_PREFIX_LEN // 2)
    secret = f"{TOKEN_BRAND}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user=user, name=name, prefix=prefix, digest=_digest(secret), expires_at=expires_at)
    return CreatedToken(token=token, secret=secret)


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The token row for `secret`, or None. Records `last_used_at` (at most once a minute)."""
    if not secret.startswith(TOKEN_BRAND) or secret.count("_") < 2:
        return None
    prefix = secret[len(TOKEN_BRAND):].split("_", 1)[0]
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.digest, _digest(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    # Throttle the write: one UPDATE per minute per token, not one per request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_replace(*, user: User, name: str) -> CreatedToken:
    """A new token named `name` for `user`, revoking the user's active tokens of that name: a script that
    makes itself a token on every run (scripts/run.sh) keeps one, not one more per run."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # two runs at once replace in turn
        ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).update(revoked_at=timezone.now())
        return api_token_create(user=user, name=name)


def api_token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def user_upsert(*, username: str, plan: str | None = None, is_staff: bool | None = None,
                monthly_budget: Decimal | None = None, unlimited: bool | None = None) -> tuple[User, bool]:
    with transaction.atomic():
        user, created = User.objects.select_for_update().get_or_create(username=username)
        wanted = {"plan": plan, "is_staff": is_staff, "monthly_budget": monthly_budget, "unlimited": unlimited}
        changed = [name for name, value in wanted.items() if value is not None and getattr(user, name) != value]
        for name in changed:
            setattr(user, name, wanted[name])
        if created:
            user.set_unusable_password()
            user.save()
        elif changed:
            user.save(update_fields=changed)
        if created or "is_staff" in changed:
            user_sync_operator_group(user=user)
    return user, created


def user_sync_operator_group(*, user: User) -> None:
    """Staff users are operators (the group's permissions); a user who stops being staff stops being one."""
    group = Group.objects.filter(name=OPERATORS_GROUP).first()
    if group is None:  # only before accounts' migration 0004 has run
        return
    if user.is_staff:
        user.groups.add(group)
    else:
        user.groups.remove(group)


def user_set_login_password(*, user: User) -> str | None:
    """Give a user who has no usable password a generated one, and return it (to be shown once).

    None when the user already has a password: it is never reset behind the owner's back
    (`manage.py changepassword USERNAME` does that on purpose).
    """
    if user.has_usable_password():
        return None
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.save(update_fields=["password"])
    return password


def user_rotate_webhook_secret(*, user: User) -> str:
    user.webhook_secret = new_webhook_secret()
    user.save(update_fields=["webhook_secret"])
    return user.webhook_secret


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spend_record(*, user_id: int, reference: str, amount: Decimal) -> None:
    """Add a billed amount to the ledger once per reference (idempotent)."""
    if amount <= 0:
        return
    # One INSERT ... ON CONFLICT DO NOTHING: a second record of the same reference is a no-op.
    with connection.cursor() as cursor:
        cursor.execute(spend_record_sql("(SELECT 1) AS once"),
                       {"owner": user_id, "reference": reference, "amount": amount, "now": timezone.now()})


def spend_record_sql(source: str) -> str:
    """spend_record as SQL, for a statement that stores what was billed and bills it at once
    (jobs.worker.lifecycle.task_outcome_save): one ledger row per row of `source` (a CTE), with the
    parameters %(owner)s, %(reference)s, %(amount)s (above zero) and %(now)s."""
    return (f'INSERT INTO "{SpendEntry._meta.db_table}" (user_id, reference, amount, created_at) '
            f"SELECT %(owner)s, %(reference)s, %(amount)s, %(now)s FROM {source} "
            "ON CONFLICT (reference) DO NOTHING")


def spend_this_month(*, user: User) -> Decimal:
    total = SpendEntry.objects.filter(user=user, created_at__gte=month_start()).aggregate(s=Sum("amount"))["s"]
    return total or Decimal("0")


def monthly_budget_of(user: User) -> Decimal | None:
    """The user's monthly limit in USD, or None for no limit."""
    if user.unlimited:
        return None
    if user.monthly_budget is not None:
        return user.monthly_budget
    default = settings.PLAN_MONTHLY_BUDGETS.get(user.plan)
    return None if default is None else Decimal(str(default))


def next_month_start(now: datetime | None = None) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


CENT = Decimal("0.01")


class SpendSummary(TypedDict):
    spent_this_month: Decimal
    monthly_budget: Decimal | None  # None: no limit
    remaining: Decimal | None  # None: no limit; never negative
    period_start: datetime
    resets_at: datetime


def spend_summary(user: User) -> SpendSummary:
    """This month's spend and what is left of the budget (for the account endpoint and the admin)."""
    spent = spend_this_month(user=user)
    budget = monthly_budget_of(user)
    return SpendSummary(
        spent_this_month=money(spent),
        monthly_budget=budget,
        remaining=None if budget is None else money(max(budget - spent, Decimal("0"))),
        period_start=month_start(),
        resets_at=next_month_start(),
    )


def usd(amount: Decimal, *, rounding: str = "ROUND_HALF_EVEN") -> str:
    """$1.25; amounts under a cent keep their digits ($0.0042, up to 6 places) rather than read $0.00."""
    cents = amount.quantize(CENT, rounding=rounding)
    if cents == amount or abs(amount) >= CENT:
        return f"${cents}"
    return f"${amount.quantize(Decimal('0.000001'), rounding=rounding).normalize():f}"


def spend_check(*, user: User, cost_high: Decimal) -> None:
    """Refuse (402) work whose highest possible cost would take the user past the monthly budget.

    Only real spend is counted, not the estimates of jobs still queued: the worker checks
    the budget again before every task (jobs.worker.lifecycle.task_may_start), so concurrent submissions can overrun
    the limit by at most the tasks already on the wire when it is reached.
    """
    budget = monthly_budget_of(user)
    if budget is None:
        return
    spent = spend_this_month(user=user)
    if spent + cost_high > budget:
        left = max(budget - spent, Decimal("0"))
        raise BudgetExceeded(
            f"This job could cost up to {usd(cost_high, rounding='ROUND_UP')}, but only "
            f"{usd(left, rounding='ROUND_DOWN')} of your monthly budget of {usd(budget)} is left "
            f"(spent {usd(spent, rounding='ROUND_UP')} this month; the budget resets on {next_month_start():%Y-%m-%d}).")


def budget_reached(*, user_id: int) -> bool:
    """True once a user's real spend this month has reached the budget (the worker stops starting tasks)."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return True
    budget = monthly_budget_of(user)
    return budget is not None and spend_this_month(user=user) >= budget
