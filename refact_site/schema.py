"""OpenAPI post-processing: every operation documents the errors every endpoint can answer with."""

from __future__ import annotations

from typing import Any

# Each body is JSON with at least a message: `{"detail": ...}` (auth, not found, limits) or the
# serializer's `{"field": ["message"]}` for validation errors.
ERROR_RESPONSES = {
    "400": "Malformed request: the message names the bad field.",
    "401": "Missing, unknown, revoked or expired API key, or a session that is not logged in.",
    "403": "Authenticated, but not allowed (e.g. an admin-only action).",
    "404": "No such object, or it belongs to another team.",
    "405": "Method not allowed.",
    "409": "Conflicts with the current state (e.g. a duplicate name).",
    "413": "Request body over the size limit.",
    "415": "Unsupported content type.",
    "429": "Too many requests: see Retry-After.",
    "503": "A back end is unavailable or still loading: see Retry-After.",
}
ERROR_SCHEMA = {"type": "object", "additionalProperties": True, "properties": {"detail": {"type": "string"}}}
METHODS = {"get", "put", "post", "delete", "patch"}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses.setdefault(status, {"description": description, "content": reference})
    return result
