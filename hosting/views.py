from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "hosting/index.html")


@login_required
def stats(request: HttpRequest) -> HttpResponse:
    return render(request, "hosting/stats.html")


def integrations_section(request: HttpRequest) -> str:
    return render_to_string("hosting/integrations_section.html", request=request)
