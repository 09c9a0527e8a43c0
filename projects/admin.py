from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from projects import services
from projects.models import KnownHost, Project, Scan, Source, SshKey
from refact_site.exceptions import ApplicationError


class SourceInline(admin.TabularInline):
    model = Source
    extra = 0
    fields = ("name", "kind", "url", "branch", "is_test", "status", "error", "last_scan_at")
    readonly_fields = ("name", "kind", "url", "branch", "status", "error", "last_scan_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # sources are added through the services (guarded doors), never raw


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "created_by", "created_at")
    list_filter = ("team",)
    search_fields = ("name",)
    fields = ("name", "team", "type_selection", "include_masks", "exclude_masks", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")
    inlines = [SourceInline]
    actions = ["scan_projects"]

    def save_model(self, request: HttpRequest, obj: Project, form: Any, change: bool) -> None:
        if not change:
            created = services.project_create(name=obj.name, team=obj.team, actor=request.user)
            obj.pk = created.pk
            obj.created_at = created.created_at
            return
        super().save_model(request, obj, form, change)
        if {"type_selection", "include_masks", "exclude_masks"} & set(form.changed_data):
            services.project_filter_update(project=obj, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: Project) -> None:
        services.project_delete(project=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            services.project_delete(project=project, actor=request.user)

    @admin.action(description="Run 'git pull', scan files")
    def scan_projects(self, request: HttpRequest, queryset: QuerySet[Project]) -> None:
        for project in queryset:
            try:
                services.project_scan_start(project=project, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{project}: {error.message}", messages.ERROR)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "kind", "status", "last_scan_at")
    list_filter = ("kind", "status")
    search_fields = ("name", "url", "project__name")
    readonly_fields = (
        "project",
        "kind",
        "name",
        "url",
        "branch",
        "ssh_key",
        "upload_name",
        "status",
        "error",
        "revision",
        "scanned_revision",
        "last_scan_at",
        "created_at",
    )
    fields = (*readonly_fields[:7], "is_test", *readonly_fields[7:])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Source) -> None:
        services.source_delete(source=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            services.source_delete(source=source, actor=request.user)


@admin.register(SshKey)
class SshKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "fingerprint", "created_at")
    fields = ("name", "team", "public_key", "fingerprint", "created_at")
    readonly_fields = ("public_key", "fingerprint", "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: SshKey | None = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "name", "team") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: SshKey, form: Any, change: bool) -> None:
        if change:
            return
        created = services.ssh_key_create(name=obj.name, team=obj.team, actor=request.user)
        obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: SshKey) -> None:
        try:
            services.ssh_key_delete(key=obj, actor=request.user)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)


@admin.register(KnownHost)
class KnownHostAdmin(admin.ModelAdmin):
    list_display = ("host", "created_at")
    readonly_fields = ("host", "lines", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: KnownHost) -> None:
        services.known_host_forget(host=obj, actor=request.user)


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ("pk", "project", "status", "progress", "files_done", "files_per_second", "created_at")
    list_filter = ("status",)
    readonly_fields = [field.name for field in Scan._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
