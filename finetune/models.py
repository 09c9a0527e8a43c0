from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from refact_site.jobs import Job

RUN_NAME_PATTERN = r"^[0-9a-zA-Z_.\-]{1,30}$"


class FinetuneRun(Job):
    """One fine-tune of a base model on a project's files: a long job with metrics, log and checkpoints."""

    QUEUED = "queued"
    FILTERING = "filtering"
    WORKING = "working"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    STATES = (QUEUED, FILTERING, WORKING, COMPLETED, FAILED, CANCELLED, INTERRUPTED)

    PENDING_STATES: ClassVar[tuple[str, ...]] = (QUEUED,)
    ACTIVE_STATES: ClassVar[tuple[str, ...]] = (FILTERING, WORKING)
    ACTOR: ClassVar[str] = "finetune.tasks.finetune_run_execute"

    name = models.CharField(max_length=30, unique=True)
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="finetune_runs")
    # Copied from the project so that access checks need no join and survive a project move.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    base_model = models.CharField(max_length=100, db_index=True)
    parameters = models.JSONField(default=dict, help_text="The Advanced settings, defaults filled in.")
    train_embeddings = models.BooleanField(default=False)
    keep_smaller = models.BooleanField(default=False)
    gpus = models.JSONField(default=list, blank=True, help_text="GPU indices; empty means the CPU.")
    cancel_requested = models.BooleanField(default=False)
    steps_done = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    evaluation = models.JSONField(null=True, blank=True, help_text="Base model vs best checkpoint on the test files.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=("queued", "filtering", "working", "completed", "failed", "cancelled", "interrupted")
                ),
                name="finetune_run_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def directory_name(self) -> str:
        return f"run-{self.pk}"


class FinetuneFile(models.Model):
    """A project file the run considered: its stage-2 loss and whether it was used for training or testing."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    PENDING = "pending"

    run = models.ForeignKey(FinetuneRun, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1000)
    absolute_path = models.CharField(max_length=2000)
    sha256 = models.CharField(max_length=64)
    language = models.CharField(max_length=50, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    marked_test = models.BooleanField(default=False, help_text="Marked by the user as a test-set file.")
    loss = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=10, default=PENDING)
    reason = models.CharField(max_length=100, blank=True)
    split = models.CharField(max_length=5, blank=True, help_text="train or test, once split.")

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="finetune_file_unique_path")]

    def __str__(self) -> str:
        return self.path


class FinetuneMetric(models.Model):
    """One optimizer step (and, at evaluation steps, the test loss)."""

    run = models.ForeignKey(FinetuneRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    train_loss = models.FloatField(null=True, blank=True)
    test_loss = models.FloatField(null=True, blank=True)
    lr = models.FloatField(default=0.0)
    tokens = models.PositiveBigIntegerField(default=0, help_text="Tokens trained on so far.")
    tokens_per_second = models.FloatField(default=0.0)
    memory_mb = models.FloatField(default=0.0, help_text="Peak memory of the training process.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="finetune_metric_unique_step")]

    def __str__(self) -> str:
        return f"{self.run_id} step {self.step}"

    def as_event(self) -> dict[str, object]:
        return {
            "type": "metric",
            "step": self.step,
            "train_loss": self.train_loss,
            "test_loss": self.test_loss,
            "lr": self.lr,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
            "memory_mb": self.memory_mb,
        }


class FinetuneLogLine(models.Model):
    run = models.ForeignKey(FinetuneRun, on_delete=models.CASCADE, related_name="log_lines")
    created_at = models.DateTimeField(auto_now_add=True)
    text = models.TextField()

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return self.text[:80]


class FinetuneCheckpoint(models.Model):
    """Adapter weights (safetensors) saved at an evaluation step, named by step and test loss."""

    run = models.ForeignKey(FinetuneRun, on_delete=models.CASCADE, related_name="checkpoints")
    name = models.CharField(max_length=100)
    step = models.PositiveIntegerField()
    train_loss = models.FloatField(null=True, blank=True)
    test_loss = models.FloatField()
    size_bytes = models.PositiveBigIntegerField(default=0)
    path = models.CharField(max_length=1000, help_text="Adapter directory, relative to the data directory.")
    is_best = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="finetune_checkpoint_unique_name"),
            models.UniqueConstraint(fields=["run"], condition=models.Q(is_best=True), name="finetune_one_best"),
        ]

    def __str__(self) -> str:
        return self.name


class FilterLossCache(models.Model):
    """Stage-2 mean loss of a file content under a model; null when no loss could be computed."""

    sha256 = models.CharField(max_length=64)
    model = models.CharField(max_length=100)
    loss = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sha256", "model"], name="filter_loss_cache_unique")]

    def __str__(self) -> str:
        return f"{self.model} {self.sha256[:12]}"
