"""The inference supervisor: makes this node's running inference servers match the assignments.

Runs inside the worker runtime (in-process in the embedded default). Every few seconds it
- claims assignments whose node died, when they fit here,
- starts a server for each assignment placed on this node, and restarts it when its configuration
  (back end, devices, context, LoRAs...) changes,
- health-checks each one: loading until /health answers 200, then ready; a server that exits is
  failed (with the last line of its log) and restarted after a backoff that doubles up to a minute,
- stops servers whose assignment is gone,
- and reports every state to the database (hosting.InferenceServer), which serving_endpoints() reads.
No torch here: the servers are subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LaunchSpec:
    """What to run for one assignment; its hash decides restarts."""

    model: str
    backend: str
    argv: tuple[str, ...]  # without the port
    env: tuple[tuple[str, str], ...]
    n_ctx: int
    loras: tuple[str, ...]
    problems: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        payload = json.dumps([self.backend, self.argv, self.env], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def model_path(weights: str) -> str:
    """Registered weights live under the data directory; catalogue ids may be there or in the HF cache."""
    local = settings.DATA_DIR / weights
    if local.exists():
        return str(local)
    named = settings.DATA_DIR / "models" / weights
    return str(named) if named.exists() else weights


def lora_rank(path: Path) -> int:
    try:
        return int(json.loads((path / "adapter_config.json").read_text()).get("r", 16))
    except (OSError, ValueError):
        return 16


def vllm_command(
    *,
    model_dir: str,
    served_name: str,
    n_ctx: int,
    gpus: int,
    concurrency: int,
    memory_fraction: float | None,
    loras: list[tuple[str, Path]],
) -> list[str]:
    """The real `vllm serve` command line for one assignment."""
    # The console script next to this interpreter: a worker started without activating its venv.
    beside = Path(sys.executable).parent / "vllm"
    argv = [
        str(beside) if beside.exists() else "vllm",
        "serve",
        model_dir,
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--max-model-len",
        str(n_ctx),
        "--tensor-parallel-size",
        str(gpus),
        "--max-num-seqs",
        str(concurrency),
        "--disable-log-requests",
    ]
    if memory_fraction is not None:
        argv += ["--gpu-memory-utilization", f"{memory_fraction:.2f}"]
    if loras:
        rank = max(lora_rank(path) for _, path in loras)
        rank = next((r for r in VLLM_LORA_RANKS if r >= rank), VLLM_LORA_RANKS[-1])
        argv += ["--enable-lora", "--max-loras", str(len(loras)), "--max-lora-rank", str(rank)]
        argv += ["--lora-modules", *(f"{name}={path}" for name, path in loras)]
    return argv


def launch_spec(assignment) -> LaunchSpec:
    """The command and environment of the server of one assignment (reads the catalogue and LoRAs)."""
    from hosting.catalogue import EMBEDDINGS, VLLM
    from hosting.placement import memory_per_gpu_mb
    from hosting.selectors import assignment_loras, model_get

    spec = model_get(assignment.model)
    if spec is None:
        raise LookupError(f"{assignment.model} is no longer in the catalogue")
    resolved = assignment_loras(assignment=assignment)
    loras = [(ref.published_name, ref.path) for ref in resolved.refs]
    gpu_ids = [d.split(":", 1)[1] for d in assignment.devices if d.startswith("cuda:")]
    env: list[tuple[str, str]] = []
    if gpu_ids:
        env.append(("CUDA_VISIBLE_DEVICES", ",".join(gpu_ids)))
    weights = model_path(spec.weights)
    if assignment.backend == VLLM:
        fraction = None
        if assignment.share_gpu:
            from hosting.models import WorkerNode

            node = WorkerNode.objects.filter(name=assignment.node).first()
            totals = [
                int(d.get("memory_total_mb", 0))
                for d in (node.devices if node else [])
                if d.get("id") in assignment.devices
            ]
            if totals and min(totals):
                fraction = min(0.95, max(0.05, memory_per_gpu_mb(spec, assignment.gpus) / min(totals)))
        argv = vllm_command(
            model_dir=weights,
            served_name=assignment.model,
            n_ctx=assignment.n_ctx,
            gpus=max(assignment.gpus, 1),
            concurrency=assignment.concurrency,
            memory_fraction=fraction,
            loras=loras,
        )
    else:
        argv = [
            sys.executable,
            "-m",
            "gpu_worker.inference_server",
            "--model-dir",
            weights,
            "--served-name",
            assignment.model,
            "--device",
            "cuda:0" if gpu_ids else "cpu",
            "--n-ctx",
            str(assignment.n_ctx),
            "--max-batch",
            str(assignment.concurrency),
        ]
        if spec.supports(EMBEDDINGS):
            argv += ["--task", "embeddings"]
        if spec.fim is not None:
            fim = spec.fim
            argv += [
                "--fim",
                json.dumps(
                    {
                        "template": fim.template,
                        "prefix_token": fim.prefix_token,
                        "suffix_token": fim.suffix_token,
                        "middle_token": fim.middle_token,
                        "eot_token": fim.eot_token,
                    }
                ),
            ]
        if settings.REFACT_INFERENCE_THREADS:
            argv += ["--threads", str(settings.REFACT_INFERENCE_THREADS)]
        for name, path in loras:
            argv += ["--lora", f"{name}={path}"]
    return LaunchSpec(
        model=assignment.model,
        backend=assignment.backend,
        argv=tuple(argv),
        env=tuple(env),
        n_ctx=assignment.n_ctx,
        loras=tuple(name for name, _ in loras),
        problems=tuple(resolved.problems),
    )


@dataclass
class Managed:
    launch: LaunchSpec
    port: int = 0
    popen: subprocess.Popen | None = None
    state: str = "loading"
    reason: str = ""
    restarts: int = 0
    backoff: float = BACKOFF_START
    next_start: float = 0.0
    log_path: Path | None = None
    reported: tuple = field(default=())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else ""


def _last_log_line(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 8192))
        lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"Error|error|Exception", line)]
    return (errors or lines or [""])[-1][:500]


class Supervisor:
    def __init__(self, *, node: str, poll_seconds: float = POLL_SECONDS):
        self.node = node
        self.poll_seconds = poll_seconds
        self.servers: dict[str, Managed] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=2.0)
        self.log_dir = settings.DATA_DIR / "logs" / "inference"

    # -- lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inference-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_seconds * 3 + 10)
        for model in list(self.servers):
            self._terminate(self.servers.pop(model))
        self._http.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.reconcile()
            except Exception:  # the database may be down: keep the servers, try again
                logger.warning("inference supervisor pass failed", exc_info=True)
            finally:
                close_old_connections()
            self._stopping.wait(self.poll_seconds)

    # -- one pass

    def reconcile(self) -> None:
        from hosting.models import ModelAssignment

        self._claim_orphans()
        wanted = {a.model: a for a in ModelAssignment.objects.filter(node=self.node).prefetch_related("loras")}
        for model in [m for m in self.servers if m not in wanted]:
            logger.info("stopping the server of %s: no longer assigned here", model)
            self._terminate(self.servers.pop(model))
        for model, assignment in wanted.items():
            try:
                launch = launch_spec(assignment)
            except Exception as error:
                self._report_failure(model, f"cannot build the command: {error}")
                continue
            managed = self.servers.get(model)
            if managed is not None and managed.launch.digest != launch.digest:
                logger.info("restarting the server of %s: its configuration changed", model)
                self._terminate(managed)
                managed = None
            if managed is None:
                managed = self.servers[model] = Managed(launch=launch)
                self._spawn(managed)
            else:
                managed.launch = launch
            self._check(managed)
            self._report(managed)

    def _claim_orphans(self) -> None:
        """Assignments on nodes that stopped heartbeating move here when they fit."""
        from hosting.models import ModelAssignment
        from hosting.placement import nodes_alive, placement_find
        from hosting.selectors import model_get
        from hosting.services import assignment_claim
        from refact_site.exceptions import ApplicationError

        alive = nodes_alive()
        names = {node.name for node in alive}
        me = [node for node in alive if node.name == self.node]
        if not me:
            return
        for assignment in ModelAssignment.objects.exclude(node__in=names):
            spec = model_get(assignment.model)
            if spec is None:
                continue
            try:
                placement = placement_find(
                    spec=spec,
                    backend=assignment.backend,
                    gpus=assignment.gpus,
                    share_gpu=assignment.share_gpu,
                    exclude=assignment.model,
                    nodes=me,
                )
            except ApplicationError:  # does not fit here; another node may take it
                continue
            if assignment_claim(
                model=assignment.model, node=self.node, devices=placement.devices, previous_node=assignment.node
            ):
                logger.info("took over %s from %s", assignment.model, assignment.node or "no node")

    # -- processes

    def _spawn(self, managed: Managed) -> None:
        launch = managed.launch
        managed.port = free_port()
        argv = [*launch.argv, "--port", str(managed.port)]
        env = {**os.environ, **dict(launch.env), "PYTHONUNBUFFERED": "1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        managed.log_path = self.log_dir / (re.sub(r"[^0-9A-Za-z_.-]", "_", launch.model) + ".log")
        try:
            with managed.log_path.open("ab") as log:
                log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
                log.flush()
                managed.popen = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(Path(__file__).resolve().parents[1]),
                    start_new_session=True,  # its own process group: stopped with its children
                )
        except OSError as error:
            managed.popen = None
            managed.state, managed.reason = "failed", f"cannot start {argv[0]}: {error.strerror}"
            self._schedule_restart(managed)
            return
        managed.state, managed.reason = "loading", ""
        logger.info("started the server of %s on port %d (pid %d)", launch.model, managed.port, managed.popen.pid)

    def _terminate(self, managed: Managed) -> None:
        popen = managed.popen
        managed.popen = None
        if popen is None or popen.poll() is not None:
            return
        try:
            os.killpg(popen.pid, signal.SIGTERM)
            popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)
        except ProcessLookupError:
            pass

    def _schedule_restart(self, managed: Managed) -> None:
        managed.next_start = time.monotonic() + managed.backoff
        managed.backoff = min(managed.backoff * 2, BACKOFF_MAX)

    def _check(self, managed: Managed) -> None:
        popen = managed.popen
        if popen is None:
            if managed.next_start and time.monotonic() >= managed.next_start:
                managed.restarts += 1
                managed.next_start = 0.0
                self._spawn(managed)
            return
        code = popen.poll()
        if code is not None:
            managed.popen = None
            managed.state = "failed"
            managed.reason = f"exited with code {code}: {_last_log_line(managed.log_path)}".rstrip(": ")
            logger.warning("server of %s %s", managed.launch.model, managed.reason)
            self._schedule_restart(managed)
            return
        try:
            response = self._http.get(f"{managed.url}/health")
        except httpx.HTTPError:
            if managed.state == "ready":  # it stopped answering: treat as loading until it exits or recovers
                managed.state, managed.reason = "loading", "not answering health checks"
            return
        if response.status_code == 200:
            if managed.state != "ready":
                logger.info("server of %s is ready", managed.launch.model)
            managed.state, managed.reason = "ready", ""
            managed.backoff = BACKOFF_START
            return
        try:
            body = response.json()
        except ValueError:
            body = {}
        if body.get("status") == "failed":
            managed.state, managed.reason = "failed", body.get("reason") or "failed to load"
            self._terminate(managed)
            self._schedule_restart(managed)
        else:
            managed.state, managed.reason = "loading", ""

    # -- reporting

    def _report(self, managed: Managed) -> None:
        from hosting.services import inference_server_report

        reason = managed.reason
        if managed.launch.problems and not reason:
            reason = "; ".join(managed.launch.problems)
        snapshot = (managed.state, reason, managed.url, managed.restarts, managed.launch.loras)
        if snapshot == managed.reported:
            return
        inference_server_report(
            model=managed.launch.model,
            node=self.node,
            state=managed.state,
            reason=reason,
            url=managed.url,
            pid=managed.popen.pid if managed.popen else None,
            n_ctx=managed.launch.n_ctx,
            loras=list(managed.launch.loras),
            restarts=managed.restarts,
        )
        managed.reported = snapshot
        self._publish(managed)

    def _report_failure(self, model: str, reason: str) -> None:
        from hosting.services import inference_server_report

        inference_server_report(model=model, node=self.node, state="failed", reason=reason)

    def _publish(self, managed: Managed) -> None:
        try:
            from refact_site.live import publish

            publish("hosting", {"type": "server", "model": managed.launch.model, "state": managed.state})
        except Exception:  # live updates are a convenience; the page also polls
            logger.debug("publish failed", exc_info=True)
