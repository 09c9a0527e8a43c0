"""The one door for uploads: a size cap checked on the declared length before reading, and again on
the bytes actually received (a client may lie or send chunked)."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, load_handler
from django.http import HttpRequest

from projects.services import upload_limit_bytes, upload_too_large_message
from refact_site.bodylimit import ENVELOPE_BYTES
from refact_site.exceptions import ApplicationError


class TooLarge(ApplicationError):
    status_code = 413

    def __init__(self) -> None:
        super().__init__(upload_too_large_message(), field="file")


class SizeLimitHandler(FileUploadHandler):
    """First in the chain: counts every byte of every file and stops the upload past the limit."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > upload_limit_bytes():
            raise TooLarge()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def limited_upload_handlers(request: HttpRequest) -> list[Any]:
    from django.conf import settings

    return [SizeLimitHandler(request)] + [load_handler(path, request) for path in settings.FILE_UPLOAD_HANDLERS]


def check_upload_size(request: Any) -> None:
    """Refuse on the declared Content-Length, before any of the body is read."""
    meta = getattr(request, "META", {})
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > upload_limit_bytes() + ENVELOPE_BYTES:
        raise TooLarge()
