from __future__ import annotations

from refact_site.exceptions import ApplicationError


class SourceError(ApplicationError):
    """A source that cannot be fetched or unpacked; the message is stored on the source and shown as it is."""
