from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from projects.models import Project


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
    return []
