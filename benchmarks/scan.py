"""Stage-1 scan speed against the floor of reading and hashing the same files, in one run; and the
scan's peak memory on a tree of 100,000 files (results streamed to the database in batches).

    python benchmarks/scan.py [--tree DIR] [--memory-files 100000] [--skip-memory]

Without --tree the installed site-packages is scanned (tens of thousands of real files). Runs on a
fresh data directory with the embedded database unless DATABASE_URL is set (then on that database,
in a project it deletes afterwards). Targets: scan rate >= 0.5x the read-and-hash rate on 2 cores;
peak memory under 300 MB at 100,000 files.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import site
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def setup_django() -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["REFACT_DATA_DIR"] = tempfile.mkdtemp(prefix="refact-bench-scan-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refact_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def read_and_hash(root: Path, paths: list[str]) -> tuple[float, int]:
    """The floor: open, read fully and sha256 every file the scan reads; returns (seconds, bytes)."""
    started, total = time.perf_counter(), 0
    for relative in paths:
        try:
            with open(root / relative, "rb", buffering=0) as handle:
                data = handle.read()
        except OSError:
            continue
        total += len(data)
        hashlib.sha256(data).hexdigest()
    return time.perf_counter() - started, total


class PeakRss:
    """Samples this process's resident memory while the scan runs."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.start = self.peak
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import psutil

        while self.running:
            total = self.process.memory_info().rss
            # The scan's worker processes count too.
            for child in self.process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> tuple[int, int]:
        self.running = False
        self.thread.join()
        return self.start, self.peak


def scan_tree(tree: Path, name: str) -> tuple[float, object, tuple[int, int]]:
    """Scan `tree` as one source of a new project; returns (seconds, scan, (rss before, peak rss))."""
    from projects.models import Source
    from projects.scanning import scan_run, source_tree
    from projects.services import project_create, project_delete, project_scan_start

    project = project_create(name=name)
    # A source whose files are already in place: the data directory links to the tree.
    source = Source.objects.create(project=project, kind=Source.Kind.ARCHIVE, name="tree", revision="benchmark")
    link = source_tree(source)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(tree, target_is_directory=True)
    from django.db import transaction

    with transaction.atomic():
        scan = project_scan_start(project=project)
    memory = PeakRss()
    started = time.perf_counter()
    scan_run(scan_id=scan.pk)
    seconds = time.perf_counter() - started
    rss = memory.stop()
    scan.refresh_from_db()
    if scan.status != "completed":
        raise SystemExit(f"scan failed: {scan.error}")
    link.unlink()
    project_delete(project=project)
    return seconds, scan, rss


def build_memory_tree(source: Path, paths: list[str], count: int) -> Path:
    """`count` files made of hard links to real files (copies where links are not possible)."""
    target = Path(tempfile.mkdtemp(prefix="refact-bench-100k-"))
    small = [relative for relative in paths if (source / relative).stat().st_size < 64 * 1024] or paths
    for index in range(count):
        relative = small[index % len(small)]
        destination = target / f"copy{index // len(small)}" / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source / relative, destination)
        except OSError:
            destination.write_bytes((source / relative).read_bytes())
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, help="directory to scan (default: site-packages)")
    parser.add_argument("--memory-files", type=int, default=100_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="alternate floor and scan; the best of each counts")
    options = parser.parse_args()
    tree = (options.tree or Path(site.getsitepackages()[0])).resolve()
    setup_django()
    from projects.scanning import walk

    paths = list(walk(tree))
    print(f"tree: {tree} ({len(paths)} files), cores: {os.cpu_count()}")  # noqa: T201

    read_and_hash(tree, paths)  # warm the page cache so both measurements read from memory
    # Alternating rounds, best of each: a shared machine's noise hits both sides alike.
    floors, scans = [], []
    for round_number in range(options.rounds):
        floor_seconds, floor_bytes = read_and_hash(tree, paths)
        scan_seconds, scan, _ = scan_tree(tree, f"benchmark-scan-{round_number}")
        floors.append(floor_seconds)
        scans.append(scan_seconds)
        print(f"round {round_number + 1}: floor {floor_seconds:.1f} s, scan {scan_seconds:.1f} s")  # noqa: T201
    floor_seconds, scan_seconds = min(floors), min(scans)
    floor_files, floor_mb = len(paths) / floor_seconds, floor_bytes / floor_seconds / 1e6
    scan_files, scan_mb = len(paths) / scan_seconds, floor_bytes / scan_seconds / 1e6
    print(f"read-and-hash floor: {floor_files:10.0f} files/s {floor_mb:8.1f} MB/s ({floor_seconds:.1f} s)")  # noqa: T201
    print(f"our scan:            {scan_files:10.0f} files/s {scan_mb:8.1f} MB/s ({scan_seconds:.1f} s)")  # noqa: T201
    print(f"ratio: {scan_files / floor_files:.2f}x the read-and-hash rate (target >= 0.50x)")  # noqa: T201
    print(f"summary: {scan.summary}")  # noqa: T201

    if options.skip_memory:
        return
    memory_tree = build_memory_tree(tree, paths, options.memory_files)
    try:
        seconds, scan, (before, peak) = scan_tree(memory_tree, "benchmark-memory")
        print(  # noqa: T201
            f"{scan.files_done} files in {seconds:.1f} s ({scan.files_done / seconds:.0f} files/s): "
            f"peak RSS {peak / 2**20:.0f} MB with worker processes (before the scan {before / 2**20:.0f} MB, "
            f"growth {(peak - before) / 2**20:.0f} MB; target < 300 MB)"
        )
    finally:
        subprocess.run(["rm", "-rf", str(memory_tree)], check=False)  # noqa: S603, S607


if __name__ == "__main__":
    main()
