from __future__ import annotations

from django.urls import path

from stats import api, views

app_name = "stats"
urlpatterns = [
    path("stats/export.csv", views.export_csv, name="export"),
    path("stats/telemetry-basic", api.TelemetryBasicView.as_view(), name="telemetry-basic"),
    path("stats/telemetry-snippets", api.TelemetrySnippetsView.as_view(), name="telemetry-snippets"),
    path("stats/rh-stats", api.RobotHumanStatsView.as_view(), name="rh-stats"),
]
