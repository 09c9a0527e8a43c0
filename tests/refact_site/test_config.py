from __future__ import annotations

import subprocess
import sys

import pytest

from refact_site.config import ConfigError, env_bool, env_database, env_int, env_list
from tests.support.server import REPO, server_environment


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=server_environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("value,expected", [("true", True), ("1", True), ("ON", True), ("no", False), ("0", False)])
def test_booleans_accept_the_usual_words(monkeypatch, value, expected):
    monkeypatch.setenv("DEBUG", value)
    assert env_bool("DEBUG", False) is expected


def test_a_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigError, match="DEBUG: expected a boolean.*'maybe'"):
        env_bool("DEBUG", False)


def test_integers_are_checked_against_their_range(monkeypatch):
    monkeypatch.setenv("N", "x")
    with pytest.raises(ConfigError, match="N: expected a whole number"):
        env_int("N", 1)
    monkeypatch.setenv("N", "0")
    with pytest.raises(ConfigError, match="outside the allowed range"):
        env_int("N", 1, minimum=1)


def test_secrets_may_come_from_a_file(monkeypatch, tmp_path):
    (tmp_path / "hosts").write_text("a.example, b.example\n")
    monkeypatch.setenv("ALLOWED_HOSTS_FILE", str(tmp_path / "hosts"))
    assert env_list("ALLOWED_HOSTS", []) == ["a.example", "b.example"]


@pytest.mark.parametrize("url", ["garbage", "mysql://root@db/x", "postgres:///", "http://db/x"])
def test_a_malformed_database_url_is_refused(monkeypatch, tmp_path, url):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        env_database("DATABASE_URL", tmp_path / "db.sqlite3")


def test_database_url_unset_means_sqlite_in_the_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = env_database("DATABASE_URL", tmp_path / "db.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")


@pytest.mark.parametrize(
    "variable,value",
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "http://cache"),
        ("LOG_LEVEL", "LOUD"),
        ("REFACT_WORKER_THREADS", "many"),
    ],
)
def test_start_up_stops_with_one_clear_line(variable, value):
    result = manage("check", **{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"configuration error: {variable}")


def test_secret_key_is_generated_once_and_kept(tmp_path):
    data = tmp_path / "data"
    for _ in range(2):
        assert manage("check", REFACT_DATA_DIR=str(data), SECRET_KEY=None).returncode == 0
    key = (data / "secret_key").read_text()
    assert len(key) >= 50
    assert oct((data / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_check_deploy_is_clean_with_production_settings():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        REFACT_HTTPS="true",
        REFACT_TRUST_PROXY_HEADERS="true",
        ALLOWED_HOSTS="refact.example.com",
        CSRF_TRUSTED_ORIGINS="https://refact.example.com",
        DEBUG="false",
        DATABASE_URL="postgres://refact@db:5432/refact",
        REDIS_URL="redis://redis:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
