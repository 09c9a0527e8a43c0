from __future__ import annotations

from django.contrib import admin

from licensing.models import License


@admin.register(License)
class LicenseAdmin(admin.ModelAdmin):
    """Read-only: licenses are activated through Settings → License, the API or `license_activate`."""

    list_display = ("customer", "seats", "valid_from", "expires_at", "activated_at", "removed_at", "kid")
    readonly_fields = (
        "license_id",
        "customer",
        "seats",
        "features",
        "kid",
        "issued_at",
        "valid_from",
        "expires_at",
        "activated_at",
        "activated_by",
        "removed_at",
    )
    exclude = ("token",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
