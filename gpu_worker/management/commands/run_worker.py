from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gpu_worker.runtime import WorkerRuntime


class Command(BaseCommand):
    help = "Run the gpu_worker: Dramatiq actors (scan, filter, fine-tune) and the inference supervisor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=None, help="Worker threads (default REFACT_WORKER_THREADS).")
        parser.add_argument("--queues", default="", help="Comma-separated queues to serve (default: all).")
        parser.add_argument("--name", default=None, help="Node name shown on the hosting page (default host:pid).")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = [queue.strip() for queue in options["queues"].split(",") if queue.strip()] or None
        runtime = WorkerRuntime(embedded=False, threads=options["threads"], queues=queues, name=options["name"])
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        runtime.start()
        self.stdout.write(f"worker {runtime.name} running; Ctrl-C to stop")
        stop.wait()
        self.stdout.write("stopping worker...")
        runtime.stop()
