from __future__ import annotations

from django.contrib import admin

from hosting.models import WorkerNode


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "pid", "embedded", "started_at", "heartbeat_at")
    readonly_fields = ("name", "hostname", "pid", "queues", "embedded", "started_at", "heartbeat_at")
