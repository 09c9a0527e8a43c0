"""The stack the plugin benchmarks run against: the tiny model's inference server and `manage.py serve`.

Shared by api_overhead.py and load.py. Everything lives in a fresh temporary data directory; the
database and Redis are the embedded default unless DATABASE_URL / REDIS_URL are set.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL = "bench"


def prepare(data_dir: Path, *, member: bool = False) -> tuple[str, Path]:
    """Database, the tiny model and an API key in a fresh data directory: the admin's, or with MEMBER a
    team member's under an Enterprise license signed by a key made here (and trusted by the server)."""
    os.environ["REFACT_DATA_DIR"] = str(data_dir)
    if member:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from licensing import tokens

        signing_key = Ed25519PrivateKey.generate()
        os.environ["REFACT_LICENSE_PUBLIC_KEYS"] = f"bench:{tokens.public_key_b64(signing_key)}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refact_site.settings")
    import django

    django.setup()
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.services import admin_bootstrap, api_key_create
    from gpu_worker.tiny_model import build_tiny_model
    from hosting.services import tiny_model_register

    weights = Path("models") / MODEL
    build_tiny_model(data_dir / weights)
    tiny_model_register(name=MODEL, weights=weights, parameters=0)
    admin = admin_bootstrap(token=secrets.token_urlsafe(16)).user
    user = admin
    if member:
        from accounts.services import team_create, user_add
        from licensing import tokens
        from licensing.services import license_activate

        token = tokens.issue(private_key=signing_key, kid="bench", customer="benchmark", seats=5, days=30)
        license_activate(token=token)
        user, _ = user_add(username="member", team=team_create(name="bench-team"))
    _, key = api_key_create(user=user, name="benchmark")
    return key, data_dir / weights


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 180, *, any_answer: bool = False) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200 or any_answer:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def rss_mb(pid: int) -> float:
    """Resident memory of one process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Stack:
    key: str
    direct: str  # the inference server
    ours: str  # our server, in front of it
    bare: str  # benchmarks/bare_relay.py in front of it (empty unless asked for)
    server_pid: int
    data_dir: Path


@contextmanager
def running_stack(
    *,
    max_batch: int,
    server_env: dict[str, str] | None = None,
    inference_threads: int | None = None,
    bare_relay: bool = False,
    member: bool = False,
) -> Iterator[Stack]:
    """The inference server on the tiny model and our server routing `bench` to it (and, with BARE_RELAY,
    benchmarks/bare_relay.py in front of it too), until the block ends."""
    data_dir = Path(tempfile.mkdtemp(prefix="refact-bench-"))
    key, model_dir = prepare(data_dir, member=member)
    env = {**os.environ, "REFACT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    inference_port, server_port = free_port(), free_port()
    direct, ours = f"http://127.0.0.1:{inference_port}", f"http://127.0.0.1:{server_port}"
    env["REFACT_INFERENCE_SERVERS"] = f"{MODEL}={direct}"
    env.update(server_env or {})
    logs = open(data_dir / "processes.log", "wb")  # noqa: SIM115
    inference_args = [sys.executable, "-m", "gpu_worker.inference_server", "--model-dir", str(model_dir)]
    inference_args += ["--served-name", MODEL, "--port", str(inference_port), "--max-batch", str(max_batch)]
    if inference_threads:
        inference_args += ["--threads", str(inference_threads)]
    processes = [
        subprocess.Popen(inference_args, cwd=REPO, env=env, stdout=logs, stderr=subprocess.STDOUT),  # noqa: S603
        subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(server_port)],
            cwd=REPO,
            env=env,
            stdout=logs,
            stderr=subprocess.STDOUT,
        ),
    ]
    bare = ""
    if bare_relay:
        bare = f"http://127.0.0.1:{free_port()}"
        relay_args = [
            sys.executable,
            "benchmarks/bare_relay.py",
            "--port",
            bare.rsplit(":", 1)[1],
            "--upstream",
            direct,
        ]
        processes.append(subprocess.Popen(relay_args, cwd=REPO, env=env, stdout=logs, stderr=subprocess.STDOUT))  # noqa: S603
    try:
        wait_for(f"{direct}/health")
        wait_for(f"{ours}/healthz", any_answer=True)  # no worker here: it answers 503
        if bare:
            wait_for(f"{bare}/health", any_answer=True)
        yield Stack(key=key, direct=direct, ours=ours, bare=bare, server_pid=processes[1].pid, data_dir=data_dir)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
        logs.close()
