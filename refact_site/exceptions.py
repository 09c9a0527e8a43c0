"""One domain error type, turned into HTTP answers in one place."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework import exceptions as drf_exceptions
from rest_framework import fields as drf_fields
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A refusal the user can act on; the message is shown as it is."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra
        if status is not None:
            self.status_code = status

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.message}
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class NotFoundError(ApplicationError):
    status_code = 404


class ConflictError(ApplicationError):
    status_code = 409


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DataError):
        # A value the database cannot hold (a number out of range, an unstorable character): the
        # input's fault, and the database refused it before anything was written.
        return Response({"detail": "A value in the request is out of range or cannot be stored."}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    return exception_handler(exc, context)


def query_int(params: Any, name: str, *, default: int | None = None, minimum: int = 0) -> int | None:
    """An integer query parameter, validated: a clear 400 instead of a crash for 'abc' or 10**30."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return drf_fields.IntegerField(min_value=minimum, max_value=2**63 - 1).run_validation(raw)
    except drf_exceptions.ValidationError as error:
        raise ApplicationError(f"{name}: {error.detail[0]}", field=name) from None
