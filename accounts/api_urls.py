from __future__ import annotations

from django.urls import path

from accounts import api

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-accounts-me"),
    path("users/", api.UserListView.as_view(), name="api-users"),
    path("users/<int:pk>/", api.UserDetailView.as_view(), name="api-user"),
    path("keys/", api.ApiKeyListView.as_view(), name="api-keys"),
    path("keys/<int:pk>/", api.ApiKeyDetailView.as_view(), name="api-key"),
    path("keys/<int:pk>/rotate/", api.ApiKeyRotateView.as_view(), name="api-key-rotate"),
    path("teams/", api.TeamListView.as_view(), name="api-teams"),
    path("teams/<int:pk>/", api.TeamDetailView.as_view(), name="api-team"),
    path("preferences/", api.PreferenceListView.as_view(), name="api-preferences"),
    path("preferences/<int:pk>/", api.PreferenceDetailView.as_view(), name="api-preference"),
    path("audit/", api.AuditListView.as_view(), name="api-audit"),
]
