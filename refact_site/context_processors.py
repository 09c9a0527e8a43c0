from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

NAVIGATION = [
    ("Model Hosting", "hosting:index"),
    ("Projects", "projects:index"),
    ("Finetune", "finetune:index"),
    ("Users", "accounts:users"),
    ("Settings", "settings"),
    ("Stats", "hosting:stats"),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    items = []
    for label, url_name in NAVIGATION:
        url = reverse(url_name)
        items.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {"navigation": items}
