from __future__ import annotations

from django.urls import path

from hosting import views

app_name = "hosting"
urlpatterns = [
    path("hosting/", views.index, name="index"),
    path("stats/", views.stats, name="stats"),
]
