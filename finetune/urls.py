from __future__ import annotations

from django.urls import path

from finetune import views

app_name = "finetune"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.launch, name="launch"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/<str:action>/", views.run_action, name="run-action"),
]
