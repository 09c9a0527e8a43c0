from __future__ import annotations

import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from tqdm import tqdm

from projects.management.commands._common import fail, project_by_name
from projects.models import REASONS, Scan
from projects.scanning import scan_run
from projects.services import project_scan_start
from refact_site.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Run 'git pull', scan files: fetch every source and run stage 1, then print the count for each reason."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project")
        parser.add_argument("--team", help="The project's team, when several teams use the same project name.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_by_name(options["project"], options["team"])
        try:
            scan = project_scan_start(project=project)
        except ApplicationError as error:
            raise fail(error) from None

        # Run it here; if a worker claimed it first, this thread finds it taken and we just watch.
        def run() -> None:
            try:
                scan_run(scan_id=scan.pk)
            finally:
                close_old_connections()

        thread = threading.Thread(target=run, name="scan", daemon=True)
        thread.start()
        with tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% {postfix}", file=self.stderr) as bar:
            while True:
                scan.refresh_from_db()
                bar.n = round(scan.progress, 1)
                bar.set_postfix_str(f"{scan.files_done}/{scan.files_total} files, {scan.files_per_second:.0f} files/s")
                if scan.is_finished:
                    break
                time.sleep(0.2)
        thread.join(timeout=5)
        self._summary(scan)

    def _summary(self, scan: Scan) -> None:
        if scan.status != "completed":
            raise CommandError(f"scan failed: {scan.error or scan.status}")
        self.stdout.write(f"Accepted: {scan.summary.get('accepted', 0)}")
        rejected = scan.summary.get("rejected", {})
        for reason in REASONS:
            self.stdout.write(f"{reason}: {rejected.get(reason, 0)}")
        if scan.failed_sources:
            lines = "; ".join(f"source {entry['source']}: {entry['error']}" for entry in scan.failed_sources)
            raise CommandError(lines)
