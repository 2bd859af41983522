"""Admins create tokens for users here, see each plain token once, and revoke them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.models import ApiToken, IdempotencyRecord
from accounts.services import revoke_tokens
from accounts.tokens import new_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "status", "created_at", "expires_at", "last_used_at")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    actions = ("revoke_selected",)
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name", "expires_at", "rate_per_minute")
        return (
            "user",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "rate_per_minute",
            "last_used_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request, obj=None):
        # A token never changes hands: revoke it and issue a new one.
        return (*self.readonly_fields, "user") if obj else ()

    def save_model(self, request, obj, form, change):
        if not change:
            plain, obj.prefix, obj.key_hash = new_token()
        super().save_model(request, obj, form, change)
        if not change:
            # The only time the plain token exists: it is not stored anywhere.
            messages.warning(
                request,
                format_html(
                    "The token for {} is <code>{}</code>. Copy it now: it will not be shown again.",
                    obj.user,
                    plain,
                ),
            )

    @admin.display(description="Status")
    def status(self, obj: ApiToken) -> str:
        return obj.status

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_selected(self, request, queryset):
        count = revoke_tokens(tokens=queryset)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    """Read-only: to see what a retried request will get back."""

    list_display = ("created_at", "user", "method", "path", "key", "status_code")
    list_select_related = ("user",)
    search_fields = ("key", "path", "user__username")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
