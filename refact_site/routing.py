from __future__ import annotations

from django.urls import path

from finetune.consumers import FinetuneRunConsumer
from projects.consumers import ProjectEventsConsumer
from refact_site.consumers import UserEventsConsumer

# Apps add their sockets here as they grow them (projects: scans, finetune: runs).
websocket_urlpatterns = [
    path("ws/events/", UserEventsConsumer.as_asgi()),
    path("ws/projects/<int:project_id>/", ProjectEventsConsumer.as_asgi()),
    path("ws/finetune/runs/<int:run_id>/", FinetuneRunConsumer.as_asgi()),
]
