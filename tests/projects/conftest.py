from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _project_data_dir(settings, tmp_path: Path) -> Path:
    """Each test gets its own data directory: ids may repeat between tests, folders must not."""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def git(*arguments: str, cwd: Path) -> str:
    environment = {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(  # noqa: S603
        ["git", *arguments],  # noqa: S607
        cwd=cwd,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


@pytest.fixture
def git_repository(tmp_path: Path) -> Path:
    """A real repository with commits on `main` and on `feature` (one file differs)."""
    repository = tmp_path / "upstream"
    repository.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=repository)
    (repository / "app.py").write_text("def main():\n    return 'hello'\n")
    (repository / "lib").mkdir()
    (repository / "lib" / "util.py").write_text("def helper(value):\n    return value * 2\n")
    git("add", "-A", cwd=repository)
    git("commit", "--quiet", "-m", "first", cwd=repository)
    git("checkout", "--quiet", "-b", "feature", cwd=repository)
    (repository / "feature.py").write_text("def feature():\n    return 'feature branch only'\n")
    git("add", "-A", cwd=repository)
    git("commit", "--quiet", "-m", "feature", cwd=repository)
    git("checkout", "--quiet", "main", cwd=repository)
    return repository


@pytest.fixture
def allow_local_git(settings) -> None:
    settings.REFACT_GIT_ALLOW_LOCAL = True
