from __future__ import annotations

from django.urls import path

from hosting import views
from stats import views as stats_views

app_name = "hosting"
urlpatterns = [
    path("hosting/", views.index, name="index"),
    path("hosting/assign/", views.assign, name="assign"),
    path("hosting/unassign/", views.unassign, name="unassign"),
    path("hosting/lora/", views.lora, name="lora"),
    path("hosting/lora/remove/", views.lora_remove, name="lora-remove"),
    path("hosting/openai/", views.openai, name="openai"),
    path("stats/", stats_views.page, name="stats"),  # the page lives in the stats app,
]
