from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerNode(models.Model):
    """A gpu_worker process (or the server's in-process worker), alive while its heartbeat is fresh."""

    name = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    embedded = models.BooleanField(default=False, help_text="Runs inside the web server process.")
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)
    devices = models.JSONField(
        default=list, blank=True, help_text="id, kind (cpu|gpu), name, memory_total_mb, memory_free_mb of each device."
    )
    backends = models.JSONField(default=list, blank=True, help_text="Inference back ends this node can run.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RegisteredModel(models.Model):
    """A model added to the catalogue locally (e.g. by `create_tiny_model`), weights in the data directory."""

    name = models.CharField(max_length=100, unique=True)
    family = models.CharField(max_length=50)
    weights = models.CharField(max_length=500, help_text="Path of the weights, relative to the data directory.")
    n_ctx = models.PositiveIntegerField()
    required_memory_mb = models.PositiveIntegerField(default=0)
    capabilities = models.JSONField(default=list)
    backends = models.JSONField(default=list)
    fim = models.JSONField(null=True, blank=True, help_text="template, prefix/suffix/middle/eot tokens")
    lora_target_modules = models.JSONField(default=list)
    cpu_capable = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelAssignment(models.Model):
    """A catalogue model the operator wants served, and where placement put it."""

    BACKEND_CHOICES = [("transformers", "transformers"), ("vllm", "vLLM")]
    LORA_OFF, LORA_BEST_OF_LATEST, LORA_SPECIFIC = "off", "best_of_latest", "specific"

    model = models.CharField(max_length=100, unique=True, help_text="Catalogue name of the model.")
    backend = models.CharField(max_length=20, choices=BACKEND_CHOICES, default="transformers")
    gpus = models.PositiveSmallIntegerField(default=0, help_text="GPUs it is sharded over; 0 = CPU.")
    share_gpu = models.BooleanField(default=False, help_text="May share its GPU with other shared models.")
    n_ctx = models.PositiveIntegerField()
    concurrency = models.PositiveSmallIntegerField(default=8, help_text="Requests decoded together.")
    node = models.CharField(max_length=200, blank=True, help_text="The worker node it is placed on.")
    devices = models.JSONField(default=list, blank=True, help_text='Device ids on that node, e.g. ["cuda:0"].')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class LoraSelection(models.Model):
    """One LoRA served with a model: the best checkpoint of the latest completed run, or a given one."""

    MODE_CHOICES = [("best_of_latest", "best of the latest run"), ("specific", "a specific run and checkpoint")]

    assignment = models.ForeignKey(ModelAssignment, on_delete=models.CASCADE, related_name="loras")
    mode = models.CharField(max_length=20, choices=MODE_CHOICES)
    run = models.CharField(max_length=30, blank=True)
    checkpoint = models.CharField(max_length=100, blank=True, help_text="Empty: the run's best checkpoint.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "mode", "run", "checkpoint"], name="lora_selection_unique")
        ]

    def __str__(self) -> str:
        if self.mode == "best_of_latest":
            return f"{self.assignment.model}: best of latest run"
        return f"{self.assignment.model}:{self.run}:{self.checkpoint or 'best'}"


class InferenceServer(models.Model):
    """The state a node's supervisor reports for the inference server of one assignment."""

    LOADING, READY, FAILED, STOPPED = "loading", "ready", "failed", "stopped"
    STATE_CHOICES = [(s, s) for s in (LOADING, READY, FAILED, STOPPED)]

    assignment = models.OneToOneField(ModelAssignment, on_delete=models.CASCADE, related_name="server")
    node = models.CharField(max_length=200)
    url = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=STATE_CHOICES, default=LOADING)
    reason = models.TextField(blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    n_ctx = models.PositiveIntegerField(default=0)
    loras = models.JSONField(default=list, blank=True, help_text="Published LoRA names it serves.")
    restarts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["assignment__model"]

    def __str__(self) -> str:
        return f"{self.assignment.model} on {self.node}: {self.state}"


class IntegrationSettings(models.Model):
    """Third-party providers (one row): the OpenAI key, encrypted at rest, and the GPT models offered."""

    openai_enabled = models.BooleanField(default=False)
    openai_key_encrypted = models.TextField(blank=True)
    openai_models = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "integration settings"

    def __str__(self) -> str:
        return "Integrations"
