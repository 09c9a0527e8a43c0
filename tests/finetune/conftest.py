from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from projects.models import Project
from projects.selectors import TrainingFile


def stdlib_corpus(count: int) -> list[Path]:
    """Real Python code: small modules of this interpreter's standard library, in a stable order."""
    files = sorted(glob.glob(os.path.join(sys.base_prefix, "lib", "python3*", "*.py")))
    small = [Path(path) for path in files if 2_000 <= os.path.getsize(path) <= 9_000]
    return small[:count]


@pytest.fixture
def training_files(tmp_path, monkeypatch):
    """The project's accepted files without a scan: real code copied to a tmp dir.

    Stands in for `projects.selectors.project_training_files` in the fast tests of runs (validation,
    control, pages); the whole-pipeline test uses `scanned_project` instead: a real git source and scan.
    Returns the list, which a test may edit before starting a run.
    """
    root = tmp_path / "corpus"
    root.mkdir()
    files: list[TrainingFile] = []
    for source in stdlib_corpus(10):
        target = root / source.name
        shutil.copyfile(source, target)
        data = target.read_bytes()
        files.append(
            TrainingFile(
                path=f"stdlib/{source.name}",
                absolute_path=target,
                sha256=hashlib.sha256(data).hexdigest(),
                language="Python",
                size=len(data),
                is_test=False,
            )
        )
    empty = root / "empty.py"
    empty.write_text("")
    files.append(
        TrainingFile(
            path="stdlib/empty.py",
            absolute_path=empty,
            sha256=hashlib.sha256(b"").hexdigest(),
            language="Python",
            size=0,
            is_test=False,
        )
    )

    def project_training_files(*, project: Project) -> list[TrainingFile]:
        return list(files)

    monkeypatch.setattr("projects.selectors.project_training_files", project_training_files)
    monkeypatch.setattr("finetune.services.project_training_files", project_training_files)
    return files


@pytest.fixture
def project(db):
    return Project.objects.create(name="demo")


@pytest.fixture
def scanned_project(tmp_path, settings, worker) -> Project:
    """A project whose source is a real git repository of real code, scanned by the real scan actor."""
    from projects.services import project_create, project_scan_start, source_add_git
    from tests.projects.conftest import git

    settings.REFACT_GIT_ALLOW_LOCAL = True  # a repository on this disk, as an admin may allow
    upstream = tmp_path / "upstream"
    (upstream / "stdlib").mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=upstream)
    for source in stdlib_corpus(10):
        shutil.copyfile(source, upstream / "stdlib" / source.name)
    (upstream / "stdlib" / "empty.py").write_text("")
    git("add", "-A", cwd=upstream)
    git("commit", "--quiet", "-m", "corpus", cwd=upstream)

    project = project_create(name="demo")
    source_add_git(project=project, url=upstream.as_uri(), branch="main")
    scan = project_scan_start(project=project)
    deadline = time.monotonic() + 60
    while not scan.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
        scan.refresh_from_db()
    assert scan.status == "completed", (scan.status, scan.error, scan.failed_sources)
    return project


# Small enough for a CPU test to train a few dozen steps in seconds.
FAST = {
    "model_ctx_size": 128,
    "batch_size": 8,
    "train_steps": 40,
    "warmup_num_steps": 2,
    "lr": 3e-3,
    "filter_loss_threshold": 100,
}
