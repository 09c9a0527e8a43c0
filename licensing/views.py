"""Settings → License: status, activation and removal (thin views over licensing.services)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST

from licensing.selectors import license_state, seats_used
from licensing.services import license_activate, license_remove
from refact_site.exceptions import ApplicationError
from refact_site.text import count_noun


def settings_section(request: HttpRequest) -> str:
    if not request.user.is_staff:
        return ""
    context = {"state": license_state(), "seats_used": seats_used()}
    return render_to_string("licensing/settings_section.html", context, request=request)


def _back() -> HttpResponse:
    return redirect(reverse("settings") + "#license")


@require_POST
@staff_member_required
def activate(request: HttpRequest) -> HttpResponse:
    try:
        license = license_activate(token=request.POST.get("token", ""), actor=request.user)
    except ApplicationError as error:
        messages.error(request, f"License not activated: {error.message}")
    else:
        messages.success(request, f"License activated: {license.customer}, {count_noun(license.seats, 'seat')}")
    return _back()


@require_POST
@staff_member_required
def remove(request: HttpRequest) -> HttpResponse:
    try:
        license_remove(actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "License removed: the server runs the Self-hosted edition; no data was deleted")
    return _back()
