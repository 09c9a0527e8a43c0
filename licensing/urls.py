from __future__ import annotations

from django.urls import path

from licensing import views

app_name = "licensing"
urlpatterns = [
    path("activate/", views.activate, name="activate"),
    path("remove/", views.remove, name="remove"),
]
