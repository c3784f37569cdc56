"""Users (with plan, budget and this month's spend) and API tokens in the Django admin.

API tokens are created through `api_token_create`, like `createtoken` and the
API: the secret is shown once, on the page that answers the "Save" (it is never
stored, nor put in a session message), and the digest is never displayed.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import ApiToken, User
from accounts.services import api_token_create, api_token_revoke, spend_summary, user_sync_operator_group
from scriptripper.output_fields import usd


def _usd(value: Decimal | None) -> str:
    return "no limit" if value is None else usd(value)


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("prefix", "name", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # tokens are created on their own page, where the secret can be shown once


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "email", "plan", "spent_this_month", "budget", "is_staff", "is_active",
                    "date_joined")
    list_filter = ("plan", "is_staff", "is_superuser", "is_active")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        # webhook_secret is left out on purpose: it signs the callbacks, and the API shows it to its owner.
        ("Plan and spending", {"fields": ("plan", "monthly_budget", "unlimited", "spending")}),
    )
    add_fieldsets = (
        *DjangoUserAdmin.add_fieldsets,
        ("Plan", {"fields": ("plan", "monthly_budget")}),
    )
    readonly_fields = ("spending",)
    inlines = (ApiTokenInline,)

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the form's own groups are saved: ticking "staff status" makes the user an operator.
        user_sync_operator_group(user=form.instance)

    @admin.display(description="spent this month")
    def spent_this_month(self, user: User) -> str:
        return _usd(spend_summary(user)["spent_this_month"])

    @admin.display(description="monthly budget")
    def budget(self, user: User) -> str:
        return _usd(spend_summary(user)["monthly_budget"])

    @admin.display(description="this month")
    def spending(self, user: User) -> str:
        if user.pk is None:
            return "—"
        summary = spend_summary(user)
        remaining = summary["remaining"]
        return (f"spent {_usd(summary['spent_this_month'])} of {_usd(summary['monthly_budget'])}"
                f"{'' if remaining is None else f', {_usd(remaining)} left'}; resets {summary['resets_at']:%Y-%m-%d}")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at", "expires_at", "revoked_at", "active")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = ("revoke_tokens",)
    # The digest is never shown, not even read-only.
    add_fields = ("user", "name", "expires_at")
    change_fields = ("prefix", "user", "name", "created_at", "last_used_at", "expires_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj=None):
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        # Only the label can change; everything else is history (revoking is an action).
        return () if obj is None else ("prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at")

    @admin.display(boolean=True, description="active")
    def active(self, token: ApiToken) -> bool:
        return token.is_active

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        created = api_token_create(user=obj.user, name=obj.name, expires_at=obj.expires_at)
        # The admin goes on with `obj` (log entry, redirect): make it the row just created.
        obj.pk = created.token.pk
        obj.prefix, obj.digest, obj.created_at = created.token.prefix, created.token.digest, created.token.created_at
        request._api_token_secret = created.secret  # for response_add only; never stored

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None) -> HttpResponse:
        secret = getattr(request, "_api_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered directly (no redirect), so the secret is in this one response and nowhere else.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API token created",
            "token": obj,
            "secret": secret,
            "changelist_url": reverse("admin:accounts_apitoken_changelist"),
            "change_url": reverse("admin:accounts_apitoken_change", args=[obj.pk]),
        }
        response = TemplateResponse(request, "admin/accounts/apitoken/token_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
