from __future__ import annotations

from django.http import HttpRequest
from django.template.loader import render_to_string


def settings_section(request: HttpRequest) -> str:
    return render_to_string("licensing/settings_section.html", request=request)
