from __future__ import annotations

from django.contrib import admin

from stats.models import CompletionServed, TelemetryRecord


@admin.register(CompletionServed)
class CompletionServedAdmin(admin.ModelAdmin):
    list_display = ["created_at", "username", "team_name", "model", "kind", "status", "latency_ms", "streamed"]
    list_filter = ["kind", "status", "streamed", "model"]
    search_fields = ["username", "team_name", "model"]
    date_hierarchy = "created_at"


@admin.register(TelemetryRecord)
class TelemetryRecordAdmin(admin.ModelAdmin):
    list_display = ["created_at", "username", "team_name", "teletype", "model", "language", "accepted_characters"]
    list_filter = ["kind", "teletype", "language"]
    search_fields = ["username", "team_name", "model"]
    date_hierarchy = "created_at"
