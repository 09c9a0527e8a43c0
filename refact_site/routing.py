from __future__ import annotations

from django.urls import path

from refact_site.consumers import UserEventsConsumer

# Apps add their sockets here as they grow them (projects: scans, finetune: runs).
websocket_urlpatterns = [
    path("ws/events/", UserEventsConsumer.as_asgi()),
]
