from __future__ import annotations

from typing import Any

from projects.scanning import project_group, scan_state
from projects.selectors import current_scan, project_get
from refact_site.consumers import LiveConsumer
from refact_site.exceptions import NotFoundError


class ProjectEventsConsumer(LiveConsumer):
    """Scan progress of one project (percent, files/s), for the Sources page."""

    def group_for(self, user: Any, **url_kwargs: Any) -> str | None:
        try:
            project = project_get(user=user, project_id=url_kwargs["project_id"])
        except NotFoundError:
            return None
        return project_group(project.pk)

    def snapshot(self, user: Any, **url_kwargs: Any) -> dict[str, Any] | None:
        project = project_get(user=user, project_id=url_kwargs["project_id"])
        scan = current_scan(project=project)
        return {"type": "scan", "scan": scan_state(scan)} if scan else None
