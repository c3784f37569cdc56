from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_token_create, api_token_replace, user_set_login_password, user_upsert


def _budget(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"--monthly-budget must be a number of USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise CommandError("--monthly-budget must be zero or more")
    if amount != amount.quantize(Decimal("0.000001")) or amount >= Decimal("10") ** 10:
        raise CommandError("--monthly-budget takes at most 6 decimal places and less than 10 digits before the point")
    return amount


class Command(BaseCommand):
    help = "Create the user if needed (or update plan, staff flag, budget) and print a new API token as the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--plan", choices=[p.value for p in User.Plan])
        parser.add_argument("--staff", action="store_true", help="make the user staff (admin, queue dashboard)")
        parser.add_argument("--monthly-budget", type=_budget, help="monthly spending limit in USD")
        parser.add_argument("--unlimited", action="store_true",
                            help="exempt from the API throttles and the monthly spending limit (benchmarks)")
        parser.add_argument("--name", default="createtoken", help="a label for the token")
        parser.add_argument("--replace", action="store_true",
                            help="revoke the user's active tokens of the same --name first (scripts/run.sh: one "
                                 "token, however many times it starts)")
        parser.add_argument("--login-password", action="store_true",
                            help="if the user has no password, generate one for the admin login and print it "
                                 "(once: later runs leave it alone)")

    def handle(self, *args, username: str, plan: str | None, staff: bool, monthly_budget: Decimal | None,
               unlimited: bool, name: str, replace: bool, login_password: bool, **options):
        user, created = user_upsert(username=username, plan=plan, is_staff=True if staff else None,
                                    monthly_budget=monthly_budget, unlimited=True if unlimited else None)
        created_token = (api_token_replace if replace else api_token_create)(user=user, name=name)
        verb = "Created" if created else "Updated"
        flags = (", staff" if user.is_staff else "") + (", unlimited" if user.unlimited else "")
        self.stdout.write(f"{verb} user {user.username} (plan {user.plan}{flags}).")
        if login_password:
            password = user_set_login_password(user=user)
            if password is None:
                self.stdout.write(f"Admin login: {user.username} keeps the password it has "
                                  f"(python manage.py changepassword {user.username} sets another).")
            else:
                self.stdout.write(f"Admin login: {user.username} / {password}  (generated now and shown only this "
                                  "once; python manage.py changepassword changes it)")
        self.stdout.write("New API token (shown once; send it as 'Authorization: Bearer <token>'):")
        self.stdout.write(created_token.secret)
