"""Start our transformers inference server (`python -m gpu_worker.inference_server`) for tests."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.server import REPO, Process, free_port, wait_until


@contextmanager
def running_inference_server(
    *, model_dir: str | Path, served_name: str = "tiny-test", extra: list[str] | None = None, timeout: float = 120
) -> Iterator[Process]:
    """An inference server on a free port; yields once /health says ready."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="refact-inference-", suffix=".log")[1])
    args = [
        sys.executable,
        "-m",
        "gpu_worker.inference_server",
        "--model-dir",
        str(model_dir),
        "--served-name",
        served_name,
        "--port",
        str(port),
        "--threads",
        "1",
        *(extra or []),
    ]
    with log.open("wb") as handle:
        popen = subprocess.Popen(args, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    process = Process(popen=popen, log_path=log, url=f"http://127.0.0.1:{port}", port=port)

    def ready() -> bool:
        if popen.poll() is not None:
            raise AssertionError(f"inference server exited with {popen.returncode}:\n{process.log()}")
        try:
            health = httpx.get(f"{process.url}/health", timeout=2)
        except httpx.HTTPError:
            return False
        if health.status_code == 503 and health.json().get("status") == "failed":
            raise AssertionError(f"inference server failed to load: {health.json()['reason']}")
        return health.status_code == 200

    try:
        wait_until(ready, timeout=timeout, message="the inference server to be ready")
        yield process
    finally:
        process.stop()
