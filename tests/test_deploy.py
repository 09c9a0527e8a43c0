"""The production stack as far as this machine can check it (no Docker engine here)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.support.server import REPO, server_environment


def requirement_names(path: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / path).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)\s*([=<>!~].*)?$", line.split("#")[0].strip())
        if match:
            pins[match.group(1).lower()] = (match.group(2) or "").strip()
    return pins


def test_requirements_keep_torch_out_of_the_web_image():
    web = requirement_names("requirements.txt")
    assert all(version.startswith("==") for version in web.values()), "web requirements are fully pinned"
    assert not {"torch", "transformers", "peft", "vllm"} & web.keys()
    worker = requirement_names("requirements-worker.txt")
    assert worker["torch"] == "==2.13.0"
    assert "vllm" not in worker
    assert "vllm" in requirement_names("gpu_worker/requirements.txt")


def test_web_code_loads_without_any_gpu_library():
    """Import the ASGI app, every URL and every app module with torch & co. made unimportable."""
    script = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "peft", "vllm", "accelerate", "sentence_transformers"}:
            raise ImportError("web code imported " + name)
sys.meta_path.insert(0, Block())
import django
django.setup()
from refact_site.asgi import application
from django.urls import get_resolver
get_resolver().url_patterns
for app in ["refact_site", "accounts", "licensing", "projects", "finetune", "hosting"]:
    package = importlib.import_module(app)
    for info in pkgutil.walk_packages(package.__path__, app + "."):
        if ".migrations" not in info.name and ".tests" not in info.name:
            importlib.import_module(info.name)
importlib.import_module("gpu_worker.runtime")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=server_environment(DJANGO_SETTINGS_MODULE="refact_site.settings"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_compose_has_the_four_services_with_persistent_volumes_and_a_gpu():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"web", "gpu_worker", "postgres", "redis"}
    assert {"pgdata", "refact-data"} <= set(compose["volumes"])
    assert "refact-data:/data" in services["web"]["volumes"]
    assert "refact-data:/data" in services["gpu_worker"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    devices = services["gpu_worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["gpu_worker"]["build"]["dockerfile"] == "gpu_worker/Dockerfile"
    for name in ("web", "gpu_worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")


def test_dockerfiles_copy_existing_files_and_run_existing_commands():
    for dockerfile in ("Dockerfile", "gpu_worker/Dockerfile"):
        text = (REPO / dockerfile).read_text()
        for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, flags=re.MULTILINE):
            assert (REPO / source).exists(), f"{dockerfile} copies missing {source}"
        for command in re.findall(r"manage\.py (\w+)", text):
            result = subprocess.run(
                [sys.executable, "manage.py", command, "--help"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=60,
                env=server_environment(),
            )
            assert result.returncode == 0, f"{dockerfile}: manage.py {command}: {result.stderr[-500:]}"
