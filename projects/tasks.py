from __future__ import annotations

import dramatiq


@dramatiq.actor(max_retries=0, time_limit=24 * 3600 * 1000)
def project_scan_run(scan_id: int) -> None:
    """Thin: the claim, the work and the error handling live in projects.scanning."""
    from projects.scanning import scan_run

    scan_run(scan_id=scan_id)
