"""The worker: Dramatiq consumer threads plus a heartbeat that registers this node.

The same runtime runs as `manage.py run_worker` (a gpu_worker process) and, in the embedded
default, inside the web server. No torch import here: actors import their heavy code lazily.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from refact_site.jobs import release_own_jobs, requeue_unfinished, worker_identity

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
DEVICE_REFRESH_BEATS = 6  # free memory is re-read every 30 s


class WorkerRuntime:
    def __init__(
        self, *, embedded: bool, threads: int | None = None, queues: list[str] | None = None, name: str | None = None
    ):
        self.embedded = embedded
        self.threads = threads or settings.REFACT_WORKER_THREADS
        self.queues = queues
        self.name = name or worker_identity()
        self.worker: dramatiq.Worker | None = None
        self._stopping = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self.registered = threading.Event()
        self.supervisor = None  # gpu_worker.supervisor.Supervisor once registered
        self.devices: list[dict[str, object]] = []
        self.backends: list[str] = []
        self.broker_run_id: str | None = None
        self.started_at = timezone.now()

    @property
    def served_queues(self) -> list[str]:
        broker = dramatiq.get_broker()
        # Delay queues (".DQ") are an implementation detail of the broker.
        return sorted(q for q in (self.queues or broker.get_declared_queues()) if not q.endswith((".DQ", ".XQ")))

    def start(self) -> None:
        self.started_at = timezone.now()
        broker = dramatiq.get_broker()
        self.worker = dramatiq.Worker(
            broker, queues=set(self.queues) if self.queues else None, worker_threads=self.threads
        )
        self.worker.start()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="worker-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        logger.info(
            "worker %s started: %d thread(s) on queues %s", self.name, self.threads, ", ".join(self.served_queues)
        )

    def stop(self, timeout_ms: int = 10_000) -> None:
        self._stopping.set()
        if self.supervisor is not None:
            self.supervisor.stop()  # inference servers go down with their worker
        if self.worker is not None:
            self.worker.stop(timeout=timeout_ms)
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=HEARTBEAT_SECONDS * 2)
        try:
            from hosting.services import worker_node_remove

            worker_node_remove(name=self.name)
        except Exception:
            logger.warning("could not unregister worker %s", self.name, exc_info=True)
        finally:
            close_old_connections()

    def _heartbeat_loop(self) -> None:
        from hosting.services import worker_node_heartbeat

        first = True
        beats = 0
        while not self._stopping.is_set():
            try:
                if beats % DEVICE_REFRESH_BEATS == 0:
                    self._detect_devices()
                beats += 1
                worker_node_heartbeat(
                    name=self.name,
                    queues=self.served_queues,
                    embedded=self.embedded,
                    starting=first,
                    devices=self.devices,
                    backends=self.backends,
                )
                if first:
                    # Work left unfinished by a stopped or killed worker resumes now.
                    release_own_jobs(worker=self.name, started_at=self.started_at)
                    requeue_unfinished()
                    self.broker_run_id = broker_run_id()
                    first = False
                    self.registered.set()
                    self._start_supervisor()
                else:
                    self._sweep(beats)
            except Exception as error:  # the database may be down: keep trying, never die
                logger.warning("worker heartbeat failed: %s", error)
            finally:
                close_old_connections()
            self._stopping.wait(HEARTBEAT_SECONDS)

    def _sweep(self, beats: int) -> None:
        """Wake-ups that were lost: a Redis restarted without persistence forgets every queued message,
        and a job whose worker was killed has no message left at all once its heartbeat goes stale."""
        run_id = broker_run_id()
        if run_id is not None and self.broker_run_id is not None and run_id != self.broker_run_id:
            logger.warning("the broker restarted: re-sending every unfinished job")
            requeue_unfinished()
        if run_id is not None:
            self.broker_run_id = run_id
        every = max(1, round(settings.REFACT_WORKER_STALE_SECONDS / HEARTBEAT_SECONDS))
        if beats % every == 0:
            requeue_unfinished(orphans_only=True)

    def _detect_devices(self) -> None:
        from gpu_worker.devices import detect_backends, detect_devices

        try:
            self.devices = detect_devices()
            self.backends = detect_backends(self.devices)
        except Exception:  # never let device probing stop the heartbeat
            logger.warning("device detection failed", exc_info=True)

    def _start_supervisor(self) -> None:
        if not settings.REFACT_SUPERVISOR or self._stopping.is_set():
            return
        from gpu_worker.supervisor import Supervisor

        self.supervisor = Supervisor(node=self.name)
        self.supervisor.start()


def broker_run_id() -> str | None:
    """The Redis server's run id (new at every restart); None for other brokers or while it is down."""
    client = getattr(dramatiq.get_broker(), "client", None)
    if client is None or not hasattr(client, "info"):
        return None
    try:
        return str(client.info("server")["run_id"])
    except Exception:  # down right now: the next beat will tell
        return None
