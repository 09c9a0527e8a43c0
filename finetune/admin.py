from __future__ import annotations

from django.contrib import admin, messages

from finetune.models import (
    FilterLossCache,
    FinetuneCheckpoint,
    FinetuneFile,
    FinetuneLogLine,
    FinetuneMetric,
    FinetuneRun,
)
from finetune.services import finetune_run_cancel
from refact_site.exceptions import ApplicationError


class CheckpointInline(admin.TabularInline):
    model = FinetuneCheckpoint
    extra = 0
    can_delete = False
    readonly_fields = ["name", "step", "train_loss", "test_loss", "size_bytes", "is_best", "path"]


@admin.register(FinetuneRun)
class FinetuneRunAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "base_model", "status", "progress", "steps_done", "total_steps", "created_at"]
    list_filter = ["status", "base_model"]
    search_fields = ["name", "project__name", "base_model"]
    readonly_fields = [
        "status",
        "progress",
        "eta_seconds",
        "error",
        "worker",
        "attempts",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "steps_done",
        "total_steps",
        "evaluation",
        "cancel_requested",
    ]
    inlines = [CheckpointInline]
    actions = ["cancel_runs"]

    @admin.action(description="Cancel selected runs (checkpoints are kept)")
    def cancel_runs(self, request, queryset) -> None:
        for run in queryset:
            try:
                finetune_run_cancel(run=run, user=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{run.name}: {error.message}", messages.WARNING)


@admin.register(FinetuneCheckpoint)
class FinetuneCheckpointAdmin(admin.ModelAdmin):
    list_display = ["name", "run", "step", "test_loss", "is_best", "size_bytes"]
    list_filter = ["is_best"]
    search_fields = ["name", "run__name"]


@admin.register(FinetuneFile)
class FinetuneFileAdmin(admin.ModelAdmin):
    list_display = ["path", "run", "status", "reason", "loss", "split"]
    list_filter = ["status", "split"]
    search_fields = ["path", "run__name"]


@admin.register(FinetuneMetric)
class FinetuneMetricAdmin(admin.ModelAdmin):
    list_display = ["run", "step", "train_loss", "test_loss", "lr", "tokens_per_second"]
    search_fields = ["run__name"]


@admin.register(FinetuneLogLine)
class FinetuneLogLineAdmin(admin.ModelAdmin):
    list_display = ["run", "created_at", "text"]
    search_fields = ["run__name", "text"]


@admin.register(FilterLossCache)
class FilterLossCacheAdmin(admin.ModelAdmin):
    list_display = ["model", "sha256", "loss", "created_at"]
    search_fields = ["sha256", "model"]
