from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from refact_site import views

api_urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("accounts/", include("accounts.api_urls")),
    path("licensing/", include("licensing.api_urls")),
    path("projects/", include("projects.api_urls")),
    path("finetune/", include("finetune.api_urls")),
    path("hosting/", include("hosting.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/license/", include("licensing.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_urlpatterns)),
    path("users/", include("accounts.urls")),
    path("projects/", include("projects.urls")),
    path("finetune/", include("finetune.urls")),
    path("", include("hosting.urls")),
    path("", include("stats.urls")),
    path("", include("hosting.plugin_urls")),
]

handler400 = "refact_site.views.bad_request"
handler403 = "refact_site.views.permission_denied"
handler404 = "refact_site.views.page_not_found"
handler500 = "refact_site.views.server_error"
