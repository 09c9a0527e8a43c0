from __future__ import annotations

import sys

from django.contrib.auth.decorators import login_required
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.module_loading import import_string
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from refact_site.health import health_report
from refact_site.middleware import outage_of, service_unavailable


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard.html")


# Each app renders its own part of the Settings page: (request) -> HTML.
SETTINGS_SECTIONS = [
    "licensing.views.settings_section",
    "hosting.views.integrations_section",
    "projects.views.ssh_keys_section",
    "accounts.views.audit_section",
]


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    sections = [import_string(path)(request) for path in SETTINGS_SECTIONS]
    return render(request, "settings.html", {"sections": [section for section in sections if section]})


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    try:  # resolving the session user needs the database, which may be the part that is down
        detailed = request.user.is_authenticated and request.user.is_staff
    except (OperationalError, InterfaceError):
        detailed = False
    healthy, report = health_report(detailed=detailed)
    return JsonResponse(report, status=200 if healthy else 503)


# Machine clients (plugins, scripts) get JSON errors on their paths, even from Django's own handlers.
API_PREFIXES = (
    "/api/",
    "/v1/",
    "/refact-caps",
    "/coding_assistant_caps.json",
    "/tokenizer/",
    "/stats/telemetry",
    "/stats/rh-",
)


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": "Malformed request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an outage raised outside any view (middleware, session save) is still a 503."""
    part = outage_of(sys.exc_info()[1])
    if part is not None:
        return service_unavailable(request, part)
    if wants_json(request):
        return JsonResponse({"detail": "Internal error; it was logged."}, status=500)
    return render(request, "500.html", status=500)
