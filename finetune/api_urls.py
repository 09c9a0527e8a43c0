from __future__ import annotations

from django.urls import path

from finetune import api

urlpatterns = [
    path("parameters/", api.ParametersApi.as_view(), name="finetune-parameters"),
    path("runs/", api.RunListApi.as_view(), name="finetune-runs"),
    path("runs/<int:run_id>/", api.RunDetailApi.as_view(), name="finetune-run"),
    path("runs/<int:run_id>/cancel/", api.RunCancelApi.as_view(), name="finetune-run-cancel"),
    path("runs/<int:run_id>/metrics/", api.RunMetricsApi.as_view(), name="finetune-run-metrics"),
    path("runs/<int:run_id>/log/", api.RunLogApi.as_view(), name="finetune-run-log"),
    path("runs/<int:run_id>/checkpoints/", api.RunCheckpointsApi.as_view(), name="finetune-run-checkpoints"),
    path(
        "runs/<int:run_id>/checkpoints/<str:name>/download/",
        api.RunCheckpointDownloadApi.as_view(),
        name="finetune-checkpoint-download",
    ),
    path("runs/<int:run_id>/files/", api.RunFilesApi.as_view(), name="finetune-run-files"),
]
