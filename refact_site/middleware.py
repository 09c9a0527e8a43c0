"""A configured service that is down (database, Redis, broker) answers 503, never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from dramatiq.errors import BrokerConnectionError

logger = logging.getLogger(__name__)

OUTAGES: tuple[tuple[type[BaseException], str], ...] = (
    (OperationalError, "database"),
    (InterfaceError, "database"),
    (redis.exceptions.ConnectionError, "redis"),
    (redis.exceptions.TimeoutError, "redis"),
    (BrokerConnectionError, "broker"),
)
RETRY_AFTER_SECONDS = 5
JSON_PREFIXES = ("/api/", "/v1/", "/refact-caps", "/coding_assistant_caps.json", "/tokenizer/", "/stats/", "/healthz")


def outage_of(error: BaseException | None) -> str | None:
    """The name of the service whose outage caused this error (or its cause), else None."""
    seen = 0
    while error is not None and seen < 5:
        for error_type, part in OUTAGES:
            if isinstance(error, error_type):
                return part
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def service_unavailable(request: HttpRequest, part: str) -> HttpResponse:
    message = f"The {part} is unavailable right now. Please retry in a few seconds."
    if request.path.startswith(JSON_PREFIXES) or "application/json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"detail": message, "unavailable": part}, status=503)
    else:
        body = render_to_string("503.html", {"message": message, "part": part})
        response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class ServiceUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        part = outage_of(exception)
        if part is None:
            return None
        logger.warning("%s unavailable while serving %s: %s", part, request.path, exception)
        return service_unavailable(request, part)


class NulCharacterMiddleware:
    """A NUL character in the query string cannot be stored or compared in PostgreSQL text: refuse it
    at the door with a 400 rather than let a lookup fail deep inside a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            message = "The request contains a NUL character."
            if request.path.startswith(JSON_PREFIXES) or "application/json" in request.headers.get("Accept", ""):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain")
        return self.get_response(request)
