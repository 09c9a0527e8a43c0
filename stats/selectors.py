"""Usage figures for the Stats page, its CSV export and the plugins' own `rh-stats`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from stats.models import CompletionServed, TelemetryRecord

DIMENSIONS = {"user": "username", "team": "team_name", "model": "model", "language": "language"}


def _scoped(queryset: QuerySet, *, viewer: User) -> QuerySet:
    """Admins see everyone; a team member sees their team; a user without a team sees their own."""
    if viewer.is_staff:
        return queryset
    if viewer.team_id:
        return queryset.filter(team_id=viewer.team_id)
    return queryset.filter(user=viewer)


def served_for(*, viewer: User, since: date) -> QuerySet[CompletionServed]:
    return _scoped(CompletionServed.objects.filter(created_at__date__gte=since), viewer=viewer)


def telemetry_for(*, viewer: User, since: date) -> QuerySet[TelemetryRecord]:
    return _scoped(TelemetryRecord.objects.filter(created_at__date__gte=since), viewer=viewer)


@dataclass
class DayUsage:
    day: date
    completions: int = 0
    accepted_characters: int = 0
    latencies: list[int] = field(default_factory=list)

    @property
    def latency_p50_ms(self) -> int:
        return int(statistics.median(self.latencies)) if self.latencies else 0


def usage_by_day(*, viewer: User, days: int = 30) -> list[DayUsage]:
    """One entry per day of the last DAYS days (days without usage included, as zeros)."""
    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    by_day = {since + timedelta(days=offset): DayUsage(day=since + timedelta(days=offset)) for offset in range(days)}
    served = served_for(viewer=viewer, since=since).filter(status=200).exclude(kind="embeddings")
    for created_at, latency in served.values_list("created_at", "latency_ms"):
        entry = by_day.get(timezone.localtime(created_at).date())
        if entry is not None:
            entry.completions += 1
            entry.latencies.append(latency)
    accepted = (
        telemetry_for(viewer=viewer, since=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(characters=Sum("accepted_characters"))
    )
    for row in accepted:
        if row["day"] in by_day:
            by_day[row["day"]].accepted_characters += row["characters"] or 0
    return list(by_day.values())


@dataclass
class Breakdown:
    key: str
    completions: int = 0
    latency_p50_ms: int = 0
    accepted_characters: int = 0
    human_characters: int = 0


def usage_breakdown(*, viewer: User, by: str, days: int = 30) -> list[Breakdown]:
    """Completions served, median latency and accepted characters grouped by user, team, model or language."""
    column = DIMENSIONS[by]
    since = timezone.localdate() - timedelta(days=days - 1)
    rows: dict[str, Breakdown] = {}
    if by != "language":  # served completions carry no language; plugins report it in telemetry
        latencies: dict[str, list[int]] = {}
        served = served_for(viewer=viewer, since=since).filter(status=200).exclude(kind="embeddings")
        for key, latency in served.values_list(column, "latency_ms"):
            latencies.setdefault(key or "—", []).append(latency)
        for key, values in latencies.items():
            rows[key] = Breakdown(key=key, completions=len(values), latency_p50_ms=int(statistics.median(values)))
    telemetry = (
        telemetry_for(viewer=viewer, since=since)
        .values(column)
        .annotate(accepted=Sum("accepted_characters"), human=Sum("human_characters"), reported=Sum("completions"))
    )
    for row in telemetry:
        key = row[column] or "—"
        entry = rows.setdefault(key, Breakdown(key=key))
        entry.accepted_characters += row["accepted"] or 0
        entry.human_characters += row["human"] or 0
        if by == "language":
            entry.completions += row["reported"] or 0
    return sorted(rows.values(), key=lambda entry: (-entry.completions, -entry.accepted_characters, entry.key))


def robot_human_stats(*, user: User, days: int = 30) -> dict[str, object]:
    """The caller's own figures (`GET /stats/rh-stats`): characters written by the model vs by hand."""
    since = timezone.localdate() - timedelta(days=days - 1)
    own = TelemetryRecord.objects.filter(user=user, created_at__date__gte=since)
    totals = own.aggregate(
        robot=Sum("accepted_characters"), human=Sum("human_characters"), completions=Sum("completions")
    )
    robot, human = totals["robot"] or 0, totals["human"] or 0
    by_model = [
        {"model": row["model"], "robot_characters": row["robot"] or 0, "human_characters": row["human"] or 0}
        for row in own.values("model").annotate(robot=Sum("accepted_characters"), human=Sum("human_characters"))
    ]
    served = CompletionServed.objects.filter(user=user, created_at__date__gte=since, status=200)
    return {
        "days": days,
        "robot_characters": robot,
        "human_characters": human,
        "robot_share": round(robot / (robot + human), 4) if robot + human else 0.0,
        "completions_reported": totals["completions"] or 0,
        "completions_served": served.aggregate(n=Count("id"))["n"],
        "by_model": sorted(by_model, key=lambda row: row["model"]),
    }
