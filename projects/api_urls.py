from __future__ import annotations

from django.urls import path

from projects import api

app_name = "projects-api"
urlpatterns = [
    path("", api.ProjectListView.as_view(), name="projects"),
    path("<int:project_id>/", api.ProjectDetailView.as_view(), name="project"),
    path("<int:project_id>/sources/", api.SourceListView.as_view(), name="sources"),
    path("<int:project_id>/sources/upload/", api.SourceUploadView.as_view(), name="source-upload"),
    path("<int:project_id>/scan/", api.ScanView.as_view(), name="scan"),
    path("<int:project_id>/filter/", api.FilterView.as_view(), name="filter"),
    path("<int:project_id>/files/", api.FileListView.as_view(), name="files"),
    path("<int:project_id>/files/download/", api.FileDownloadView.as_view(), name="files-download"),
    path("sources/<int:source_id>/", api.SourceDetailView.as_view(), name="source"),
    path("ssh-keys/", api.SshKeyListView.as_view(), name="ssh-keys"),
    path("ssh-keys/<int:key_id>/", api.SshKeyDetailView.as_view(), name="ssh-key"),
]
