from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string


@login_required
def users(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/users.html")


def audit_section(request: HttpRequest) -> str:
    return render_to_string("accounts/audit_section.html", request=request)
