from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import ApiKey, AuditEntry, Team, TeamPreference, User
from accounts.services import api_key_revoke, audit_record, user_set_active, validate_completion_model
from refact_site.exceptions import ApplicationError


class AuditedAdmin(admin.ModelAdmin):
    """Changes made in the Django admin are audited like those made through the services."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        name = obj._meta.model_name
        fields = [field for field in form.changed_data if "password" not in field]
        audit_record(
            actor=request.user,
            action=f"{name}.changed_in_admin" if change else f"{name}.added_in_admin",
            target=obj,
            diff={"fields": fields},
        )

    def delete_model(self, request, obj):
        audit_record(actor=request.user, action=f"{obj._meta.model_name}.deleted_in_admin", target=obj)
        super().delete_model(request, obj)


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    list_display = ("username", "email", "team", "is_active", "is_staff", "last_login", "date_joined")
    list_filter = ("team", "is_active", "is_staff")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Team", {"fields": ("team",)}))
    actions = ["deactivate_users", "reactivate_users"]

    def _set_active(self, request, queryset, *, active: bool) -> None:
        # Through the service: the seat count, the edition and the audit log apply here too.
        done = 0
        for user in queryset:
            try:
                user_set_active(user=user, active=active, actor=request.user)
                done += 1
            except ApplicationError as error:
                self.message_user(request, f"{user.username}: {error.message}", messages.WARNING)
        if done:
            self.message_user(request, f"{'Reactivated' if active else 'Deactivated'} {done} user(s).")

    @admin.action(description="Deactivate selected users (their keys stop working; nothing is deleted)")
    def deactivate_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Reactivate selected users")
    def reactivate_users(self, request, queryset) -> None:
        self._set_active(request, queryset, active=True)


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


class TeamPreferenceForm(forms.ModelForm):
    class Meta:
        model = TeamPreference
        fields = ["team", "project", "completion_model"]

    def clean_completion_model(self) -> str:
        try:
            return validate_completion_model(self.cleaned_data["completion_model"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None

    def clean(self):
        cleaned = super().clean()
        project, team = cleaned.get("project"), cleaned.get("team")
        if project is not None and team is not None and project.team_id != team.pk:
            raise forms.ValidationError({"project": "This project belongs to another team"})
        return cleaned


@admin.register(TeamPreference)
class TeamPreferenceAdmin(AuditedAdmin):
    form = TeamPreferenceForm
    list_display = ("team", "project", "completion_model", "updated_at")
    list_filter = ("team",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created through the Users page, the API or `key_create` (the plaintext is shown once there)."""

    list_display = ("display", "name", "user", "created_at", "expires_at", "revoked_at", "last_used")
    list_filter = ("revoked_at",)
    search_fields = ("user__username", "name", "key_id")
    # The secret hash is never shown, only the public id and the last 4 characters.
    fields = ("display", "name", "user", "created_at", "expires_at", "revoked_at", "last_used")
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke selected keys", permissions=["delete"])
    def revoke_keys(self, request, queryset) -> None:
        keys = [key for key in queryset if key.revoked_at is None]
        for key in keys:
            api_key_revoke(key=key, actor=request.user)
        self.message_user(request, f"Revoked {len(keys)} key(s).")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_name", "action", "target_type", "target_repr")
    list_filter = ("action",)
    search_fields = ("actor_name", "action", "target_repr")
    readonly_fields = ("created_at", "actor", "actor_name", "action", "target_type", "target_id", "target_repr", "diff")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
