from __future__ import annotations

from django.urls import path

from hosting import api

urlpatterns = [
    path("devices/", api.DeviceListView.as_view(), name="api-hosting-devices"),
    path("catalogue/", api.CatalogueView.as_view(), name="api-hosting-catalogue"),
    path("assignments/", api.AssignmentListView.as_view(), name="api-hosting-assignments"),
    # Model names contain slashes: the LoRA routes come first so `<path:model>` does not swallow them.
    path("assignments/<path:model>/loras/<int:pk>/", api.LoraDetailView.as_view(), name="api-hosting-lora"),
    path("assignments/<path:model>/loras/", api.LoraView.as_view(), name="api-hosting-loras"),
    path("assignments/<path:model>/", api.AssignmentDetailView.as_view(), name="api-hosting-assignment"),
    path("integrations/openai/", api.OpenAIView.as_view(), name="api-hosting-openai"),
]
