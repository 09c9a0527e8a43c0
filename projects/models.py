from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.reasons import (  # noqa: F401 - re-exported: the reasons belong with the models' data
    DUPLICATES,
    EXCLUDED_BY_MASK,
    GENERATED,
    LINGUIST_ERROR,
    LOTS_OF_DIGITS,
    NOT_CODE,
    NOT_TEXT,
    REASONS,
    TOO_LARGE,
    TYPE_OFF,
    UNRECOVERABLE_REASONS,
    VENDORED,
)
from refact_site.jobs import Job


class Project(models.Model):
    """The sources a model learns from. Owned by a team, or by the admin (Self-hosted: team is empty)."""

    name = models.CharField(max_length=100)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="projects")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # File Type Filter: None until the first scan picks the most common code type.
    type_selection = models.JSONField(null=True, blank=True, help_text="Selected file types (extensions).")
    include_masks = models.TextField(blank=True, help_text="gitignore syntax, one pattern a line.")
    exclude_masks = models.TextField(blank=True, help_text="gitignore syntax, one pattern a line.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], condition=Q(team__isnull=False), name="project_name_unique_per_team"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(team__isnull=True), name="project_name_unique_without_team"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SshKey(models.Model):
    """A server-generated Ed25519 key; the private half is encrypted at rest (see projects.sshkeys)."""

    name = models.CharField(max_length=100)
    # A team can only be deleted once it owns no projects (accounts), so no source uses its keys then.
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="ssh_keys")
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=100)
    private_key_encrypted = models.BinaryField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SSH key"
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], condition=Q(team__isnull=False), name="ssh_key_name_unique_per_team"
            ),
            models.UniqueConstraint(
                fields=["name"], condition=Q(team__isnull=True), name="ssh_key_name_unique_without_team"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class KnownHost(models.Model):
    """SSH host keys pinned on first use: a later, different key for the same host is refused."""

    host = models.CharField(max_length=300, unique=True, help_text="As ssh names it: host or [host]:port.")
    lines = models.TextField(help_text="known_hosts lines recorded on first contact.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host


class Source(models.Model):
    class Kind(models.TextChoices):
        GIT = "git", "Git repository"
        LINK = "link", "Archive by link"
        ARCHIVE = "archive", "Uploaded archive"
        FILE = "file", "Uploaded file"

    class Status(models.TextChoices):
        NEW = "new", "New"
        FETCHING = "fetching", "Fetching"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=200, help_text="Shown as the first part of every path of this source.")
    url = models.CharField(max_length=2000, blank=True)
    branch = models.CharField(max_length=250, blank=True)
    ssh_key = models.ForeignKey(SshKey, null=True, blank=True, on_delete=models.PROTECT, related_name="sources")
    upload_name = models.CharField(max_length=255, blank=True, help_text="The uploaded file's own name.")
    is_test = models.BooleanField(default=False, help_text="A single file held out as a test-set file.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    error = models.TextField(blank=True)
    # What was fetched (git HEAD or the archive's sha256) and what the last scan read: equal means
    # the next scan may reuse the earlier results instead of reading the files again.
    revision = models.CharField(max_length=64, blank=True)
    scanned_revision = models.CharField(max_length=64, blank=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="source_name_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"


class Scan(Job):
    """Stage 1 over every source of a project; progress is pushed to the project's live group."""

    ACTIVE_STATES = ("running",)
    ACTOR = "projects.tasks.project_scan_run"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="scans")
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    files_per_second = models.FloatField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="Accepted count and count per reason.")
    failed_sources = models.JSONField(default=list, blank=True, help_text="[{source, error}] of this scan.")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"scan {self.pk} of {self.project}"


class ScannedFile(models.Model):
    """One file as stage 1 saw it. `read_reason` comes from reading the file; `reason` is the final
    verdict after duplicates, masks and type selection, re-computed without reading again."""

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="files")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(help_text="Walk order: the first of duplicates is kept.")
    path = models.CharField(max_length=2000, help_text="Path inside the source.")
    file_type = models.CharField(max_length=60, blank=True)
    language = models.CharField(max_length=60, blank=True)
    size = models.BigIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    digit_ratio = models.FloatField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    is_test = models.BooleanField(default=False)
    read_reason = models.CharField(max_length=30, blank=True)
    is_duplicate = models.BooleanField(default=False)
    reason = models.CharField(max_length=30, blank=True, db_index=True, help_text="Empty: accepted.")

    class Meta:
        ordering = ["scan", "position"]
        constraints = [models.UniqueConstraint(fields=["scan", "position"], name="scanned_file_position_unique")]
        indexes = [models.Index(fields=["scan", "file_type"])]

    def __str__(self) -> str:
        return self.path

    @property
    def accepted(self) -> bool:
        return not self.reason
