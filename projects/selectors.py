from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import Count, Q, QuerySet

from accounts.selectors import is_admin
from projects.models import Project, Scan, ScannedFile, Source, SshKey
from projects.scanning import source_tree
from refact_site.exceptions import NotFoundError


@dataclass(frozen=True)
class TrainingFile:
    """One accepted file of a project's latest scan, as the fine-tune pipeline reads it."""

    path: str  # shown to users: "<source name>/<path inside the source>"
    absolute_path: Path  # where its content is on disk now
    sha256: str
    language: str
    size: int
    is_test: bool  # marked by the user as a test-set file


def project_training_files(*, project: Project) -> list[TrainingFile]:
    """Accepted files of the project's latest scan (after type selection and masks), in a stable order.

    Contract between projects (issue 5) and finetune (issue 6); implemented by the projects scan.
    """
    scan = latest_scan(project=project)
    if scan is None:
        return []
    rows = scan.files.filter(reason="").select_related("source").order_by("position")
    return [
        TrainingFile(
            path=f"{row.source.name}/{row.path}",
            absolute_path=source_tree(row.source) / row.path,
            sha256=row.sha256,
            language=row.language,
            size=row.size,
            is_test=row.is_test,
        )
        for row in rows
    ]


# --- scoping: non-admins see their team's objects; anything else is "not found" -------------


def _is_admin(user: Any) -> bool:
    return bool(user is not None and is_admin(user))


def team_scope(user: Any) -> Q:
    if _is_admin(user):
        return Q()
    team_id = getattr(user, "team_id", None)
    return Q(team_id=team_id) if team_id else Q(pk__in=[])


def project_list(*, user: Any) -> QuerySet[Project]:
    return Project.objects.filter(team_scope(user)).select_related("team").annotate(source_count=Count("sources"))


def project_get(*, user: Any, project_id: int | str) -> Project:
    try:
        return Project.objects.filter(team_scope(user)).get(pk=int(project_id))
    except (Project.DoesNotExist, ValueError, TypeError):
        raise NotFoundError("project: not found", field="project") from None


def project_get_by_name(*, name: str, team: Any = None) -> Project:
    try:
        return Project.objects.get(name=name, team=team)
    except Project.DoesNotExist:
        raise NotFoundError(f"project: no project named {name!r}", field="project") from None


def source_get(*, user: Any, source_id: int | str) -> Source:
    try:
        return Source.objects.select_related("project").get(
            Q(pk=int(source_id)) & Q(**{f"project__{key}": value for key, value in _team_kwargs(user).items()})
        )
    except (Source.DoesNotExist, ValueError, TypeError):
        raise NotFoundError("source: not found", field="source") from None


def _team_kwargs(user: Any) -> dict[str, Any]:
    if _is_admin(user):
        return {}
    team_id = getattr(user, "team_id", None)
    return {"team_id": team_id} if team_id else {"pk__in": []}


def ssh_key_list(*, user: Any) -> QuerySet[SshKey]:
    return SshKey.objects.filter(team_scope(user))


def ssh_key_get(*, user: Any, key_id: int | str | None = None, name: str | None = None) -> SshKey:
    try:
        keys = ssh_key_list(user=user)
        return keys.get(pk=int(key_id)) if key_id is not None else keys.get(name=name)
    except (SshKey.DoesNotExist, SshKey.MultipleObjectsReturned, ValueError, TypeError):
        raise NotFoundError("ssh_key: no such SSH key", field="ssh_key") from None


# --- scans and files ------------------------------------------------------------------------


def latest_scan(*, project: Project) -> Scan | None:
    return project.scans.filter(status="completed").order_by("-pk").first()


def current_scan(*, project: Project) -> Scan | None:
    """The newest scan whatever its state (the one the page shows progress for)."""
    return project.scans.order_by("-pk").first()


def file_type_counts(*, project: Project) -> list[dict[str, Any]]:
    """Every type of the latest scan with its count, how many are accepted, and whether it is selected."""
    scan = latest_scan(project=project)
    if scan is None:
        return []
    selection = set(project.type_selection or [])
    rows = (
        scan.files.values("file_type")
        .annotate(count=Count("id"), accepted=Count("id", filter=Q(reason="")))
        .order_by("-count", "file_type")
    )
    return [
        {
            "type": row["file_type"],
            "count": row["count"],
            "accepted": row["accepted"],
            "selected": row["file_type"] in selection,
        }
        for row in rows
    ]


def scanned_files(
    *, project: Project, reason: str | None = None, file_type: str | None = None, accepted: bool | None = None
) -> QuerySet[ScannedFile]:
    scan = latest_scan(project=project)
    if scan is None:
        return ScannedFile.objects.none()
    rows = scan.files.select_related("source").order_by("position")
    if reason is not None:
        rows = rows.filter(reason=reason)
    if accepted is True:
        rows = rows.filter(reason="")
    elif accepted is False:
        rows = rows.exclude(reason="")
    if file_type is not None:
        rows = rows.filter(file_type=file_type)
    return rows
