"""DRF's JSON parser, with the refusals it misses answered as 400 instead of a crash."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # `[[[[...` thousands deep exhausts the decoder's stack: the input's fault, not ours.
            raise ParseError("JSON parse error - nested too deeply") from None
