from __future__ import annotations

from django.contrib import admin, messages

from hosting import services
from hosting.models import InferenceServer, IntegrationSettings, LoraSelection, ModelAssignment, WorkerNode
from refact_site.exceptions import ApplicationError


@admin.register(WorkerNode)
class WorkerNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "hostname", "pid", "embedded", "device_summary", "started_at", "heartbeat_at")
    list_filter = ("embedded",)
    search_fields = ("name", "hostname")
    readonly_fields = (
        "name",
        "hostname",
        "pid",
        "queues",
        "embedded",
        "devices",
        "backends",
        "started_at",
        "heartbeat_at",
    )

    @admin.display(description="devices")
    def device_summary(self, node: WorkerNode) -> str:
        return ", ".join(f"{d.get('id')} ({d.get('memory_total_mb')} MB)" for d in node.devices)


class LoraSelectionInline(admin.TabularInline):
    model = LoraSelection
    extra = 0
    readonly_fields = ("mode", "run", "checkpoint", "created_at")
    can_delete = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # added through lora_activate, which checks the checkpoint exists


@admin.register(ModelAssignment)
class ModelAssignmentAdmin(admin.ModelAdmin):
    """Read-mostly: placement runs in hosting.services (the page, the API and model_assign)."""

    list_display = ("model", "backend", "gpus", "share_gpu", "n_ctx", "concurrency", "node", "server_state")
    list_filter = ("backend", "share_gpu", "node")
    search_fields = ("model", "node")
    readonly_fields = ("model", "backend", "gpus", "share_gpu", "n_ctx", "concurrency", "node", "devices")
    inlines = [LoraSelectionInline]
    actions = ["activate_best_of_latest", "lora_off", "unassign"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="state")
    def server_state(self, assignment: ModelAssignment) -> str:
        try:
            return assignment.server.state
        except InferenceServer.DoesNotExist:
            return "waiting"

    def _each(self, request, queryset, call, done: str) -> None:
        for assignment in queryset:
            try:
                call(assignment)
            except ApplicationError as error:
                self.message_user(request, f"{assignment.model}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{assignment.model}: {done}")

    @admin.action(description="Activate LoRA: best checkpoint of the latest run")
    def activate_best_of_latest(self, request, queryset) -> None:
        self._each(
            request,
            queryset,
            lambda a: services.lora_activate(actor=request.user, model=a.model, mode="best_of_latest"),
            "best of latest added",
        )

    @admin.action(description="LoRA off (serve the base model)")
    def lora_off(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda a: services.lora_activate(actor=request.user, model=a.model, mode="off"), "off"
        )

    @admin.action(description="Stop hosting")
    def unassign(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda a: services.model_unassign(actor=request.user, model=a.model), "unassigned"
        )

    def delete_model(self, request, obj: ModelAssignment) -> None:
        services.model_unassign(actor=request.user, model=obj.model)


@admin.register(InferenceServer)
class InferenceServerAdmin(admin.ModelAdmin):
    list_display = ("assignment", "node", "state", "reason", "url", "restarts", "updated_at")
    list_filter = ("state", "node")
    search_fields = ("assignment__model", "node", "reason")
    readonly_fields = [f.name for f in InferenceServer._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(IntegrationSettings)
class IntegrationSettingsAdmin(admin.ModelAdmin):
    list_display = ("__str__", "openai_enabled", "openai_models", "updated_at")
    readonly_fields = ("openai_enabled", "masked_key", "openai_models", "updated_at")
    exclude = ("openai_key_encrypted",)

    @admin.display(description="OpenAI API key")
    def masked_key(self, row: IntegrationSettings) -> str:
        return "saved (encrypted; change it in Settings)" if row.openai_key_encrypted else "not set"

    def has_add_permission(self, request) -> bool:
        return False
