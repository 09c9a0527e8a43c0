from __future__ import annotations

from django.urls import path

from licensing import api

urlpatterns = [
    path("license/", api.LicenseView.as_view(), name="api-license"),
    path("edition/", api.EditionView.as_view(), name="api-edition"),
]
