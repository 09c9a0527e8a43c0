from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from stats.models import CompletionServed, TelemetryRecord

MAX_RECORDS = 5000


def completion_served_record(
    *,
    user_id: int,
    team_id: int | None,
    model: str,
    kind: str,
    status: int,
    latency_ms: int,
    first_token_ms: int | None = None,
    streamed: bool = False,
    chunks: int = 0,
    created_at: datetime | None = None,
) -> CompletionServed:
    row = {
        "user_id": user_id,
        "team_id": team_id,
        "model": model,
        "kind": kind,
        "status": status,
        "latency_ms": latency_ms,
        "first_token_ms": first_token_ms,
        "streamed": streamed,
        "chunks": chunks,
        "created_at": created_at,
    }
    return completions_served_record([row])[0]


def completions_served_record(rows: list[dict[str, Any]]) -> list[CompletionServed]:
    """One usage row per served request (fields as `completion_served_record` takes them), in one INSERT.

    The plugin API buffers its rows and writes them here a few times a second: a row per request,
    each with its own user lookup, costs the hot path two queries and a thread hop.
    """
    users = User.objects.select_related("team").in_bulk({row["user_id"] for row in rows})
    now = timezone.now()
    served = []
    for row in rows:
        user = users.get(row["user_id"])
        team_id = row["team_id"]
        served.append(
            CompletionServed(
                created_at=row.get("created_at") or now,
                user=user,
                username=user.username if user else "",
                team_id=team_id if user and user.team_id == team_id else None,
                team_name=user.team.name if user and user.team_id else "",
                model=row["model"][:300],
                kind=row["kind"],
                status=row["status"],
                latency_ms=max(0, row["latency_ms"]),
                first_token_ms=row.get("first_token_ms"),
                streamed=row.get("streamed", False),
                chunks=row.get("chunks", 0),
            )
        )
    return CompletionServed.objects.bulk_create(served)


@lru_cache(maxsize=512)
def language_of(extension: str) -> str:
    """A language name for a file extension (`py` → `Python`), via Pygments; '' when unknown."""
    extension = extension.strip().lstrip(".").lower()[:20]
    if not extension:
        return ""
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        return get_lexer_for_filename(f"file.{extension}").name[:50]
    except ClassNotFound:
        return extension


def _count(record: dict[str, Any], *names: str) -> int:
    for name in names:
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return min(int(value), 2**31 - 1)
    return 0


def storable(value: Any) -> Any:
    """VALUE with every string made storable in PostgreSQL text and jsonb: plugins send what they
    like, and NUL characters or lone surrogates would make the whole batch fail."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def _row(*, user: User, kind: str, teletype: str, record: dict[str, Any]) -> TelemetryRecord:
    language = record.get("language")
    if not isinstance(language, str) or not language:
        extension = record.get("file_extension") or record.get("file_ext") or ""
        language = language_of(extension) if isinstance(extension, str) else ""
    model = record.get("model")
    return TelemetryRecord(
        user=user,
        username=user.username,
        team_id=user.team_id,
        team_name=user.team.name if user.team_id else "",
        kind=kind,
        teletype=teletype[:50],
        model=model[:300] if isinstance(model, str) else "",
        language=language[:50],
        completions=_count(record, "completions_cnt", "completions"),
        accepted_characters=_count(record, "robot_characters", "accepted_characters"),
        human_characters=_count(record, "human_characters"),
        data=record,
    )


@transaction.atomic
def telemetry_store(*, user: User, kind: str, teletype: str, records: list[dict[str, Any]]) -> int:
    """Store a batch of plugin telemetry records (all or none); returns how many were stored."""
    teletype = storable(teletype)
    rows = [_row(user=user, kind=kind, teletype=teletype, record=storable(record)) for record in records[:MAX_RECORDS]]
    TelemetryRecord.objects.bulk_create(rows)
    return len(rows)
