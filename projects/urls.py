from __future__ import annotations

from django.urls import path

from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.project_new, name="new"),
    path("<int:project_id>/", views.detail, name="detail"),
    path("<int:project_id>/rename/", views.project_rename, name="rename"),
    path("<int:project_id>/delete/", views.project_delete, name="delete"),
    path("<int:project_id>/sources/add/", views.source_add, name="source-add"),
    path("<int:project_id>/sources/upload/", views.source_upload, name="source-upload"),
    path("<int:project_id>/scan/", views.scan_start, name="scan"),
    path("<int:project_id>/filter/", views.filter_save, name="filter"),
    path("<int:project_id>/files/", views.files, name="files"),
    path("sources/<int:source_id>/delete/", views.source_delete, name="source-delete"),
    path("sources/<int:source_id>/test/", views.source_test, name="source-test"),
    path("ssh-keys/new/", views.ssh_key_create, name="ssh-key-create"),
    path("ssh-keys/<int:key_id>/delete/", views.ssh_key_delete, name="ssh-key-delete"),
]
