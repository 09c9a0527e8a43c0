from __future__ import annotations

from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("", views.users, name="users"),
    path("add/", views.user_add, name="user_add"),
    path("<int:pk>/team/", views.user_team, name="user_team"),
    path("<int:pk>/active/", views.user_active, name="user_active"),
    path("<int:pk>/keys/", views.key_create, name="key_create"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("teams/", views.team_add, name="team_add"),
    path("teams/<int:pk>/delete/", views.team_delete, name="team_delete"),
    path("preferences/", views.preference_set, name="preference_set"),
]
