from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start the server (daphne, HTTP and websockets) and, in the embedded default, its worker."

    def add_arguments(self, parser: CommandParser) -> None:
        # IDE plugins connect from other machines: all interfaces, as the product always did.
        parser.add_argument("--host", default="0.0.0.0", help="Address to listen on (default 0.0.0.0).")  # noqa: S104
        parser.add_argument("--port", type=int, default=8008, help="Port to listen on (default 8008).")
        parser.add_argument("--no-worker", action="store_true", help="Do not run the in-process worker.")
        parser.add_argument("--access-log", action="store_true", help="Log every request to stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        # daphne.server installs the asyncio Twisted reactor: import it before anything else Twisted.
        from channels.routing import get_default_application
        from daphne.access import AccessLogGenerator
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        # The admin exists before the first request is answered. If PostgreSQL is down at start the
        # server still answers (/healthz says what is down) and bootstraps once it is back.
        if not self._bootstrap():
            threading.Thread(target=self._bootstrap_when_database_is_up, name="bootstrap", daemon=True).start()

        runtime = None
        if settings.REFACT_INPROCESS_WORKER and not options["no_worker"]:
            from gpu_worker.runtime import WorkerRuntime

            runtime = WorkerRuntime(embedded=True)
            runtime.start()

        proxy_headers = {}
        if settings.REFACT_TRUST_PROXY_HEADERS:
            proxy_headers = {
                "proxy_forwarded_address_header": "X-Forwarded-For",
                "proxy_forwarded_port_header": "X-Forwarded-Port",
                "proxy_forwarded_proto_header": "X-Forwarded-Proto",
            }
        self.stdout.write(f"Refact server on http://{options['host']}:{options['port']}/ (data in {settings.DATA_DIR})")
        self.stdout.flush()

        class RefactServer(Server):
            listen_failed = False

            def listen_error(self, failure: Any) -> None:
                self.listen_failed = True
                super().listen_error(failure)

        from refact_site.daphne_limits import http_factory_install

        http_factory_install()

        server = RefactServer(
            application=get_default_application(),
            endpoints=build_endpoint_description_strings(host=options["host"], port=options["port"]),
            signal_handlers=True,
            action_logger=AccessLogGenerator(self.stdout._out) if options["access_log"] else None,
            **proxy_headers,
        )
        # A full collection walks every object made at start-up (Django, DRF, the URL and app registries):
        # about 100 ms here, during which no stream is relayed (the p99 of benchmarks/api_overhead.py).
        # Frozen, they are never walked again.
        gc.collect()
        gc.freeze()
        try:
            server.run()
        finally:
            if runtime is not None:
                runtime.stop()
        if server.listen_failed:
            raise CommandError(f"cannot listen on {options['host']}:{options['port']} (is the port in use?)")

    def _bootstrap_when_database_is_up(self) -> None:
        delay = 1.0
        while not self._bootstrap():
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _bootstrap(self) -> bool:
        from accounts.services import admin_bootstrap

        try:
            result = admin_bootstrap()
        except Exception as error:
            logger.warning("admin bootstrap waits for the database: %s", error)
            return False
        finally:
            close_old_connections()
        if result.generated_password:
            line = "=" * 64
            self.stdout.write(
                f"\n{line}\nAdmin account created: {result.user.username} / {result.generated_password}\n"
                f"This password is shown once. To choose one, set ENTERPRISE_ADMIN_TOKEN and restart.\n{line}\n"
            )
            self.stdout.flush()
        return True
