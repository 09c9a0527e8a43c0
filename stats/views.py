from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from stats.charts import bar_chart
from stats.selectors import DIMENSIONS, usage_breakdown, usage_by_day

PERIODS = (7, 30, 90)


def _days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        return 30
    return days if days in PERIODS else 30


@login_required
def page(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    daily = usage_by_day(viewer=request.user, days=days)
    charts = [
        bar_chart(title="Completions served", unit="", points=[(f"{d.day:%m-%d}", d.completions) for d in daily]),
        bar_chart(
            title="Accepted characters", unit="", points=[(f"{d.day:%m-%d}", d.accepted_characters) for d in daily]
        ),
        bar_chart(title="Median latency", unit="ms", points=[(f"{d.day:%m-%d}", d.latency_p50_ms) for d in daily]),
    ]
    breakdowns = [(name, usage_breakdown(viewer=request.user, by=name, days=days)) for name in DIMENSIONS]
    return render(
        request,
        "stats/index.html",
        {
            "days": days,
            "periods": PERIODS,
            "charts": charts,
            "breakdowns": breakdowns,
            "has_usage": any(rows for _, rows in breakdowns),
        },
    )


@login_required
def export_csv(request: HttpRequest) -> HttpResponse:
    """Every figure of the page as rows: (dimension, key, completions, median latency, characters)."""
    days = _days(request)
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="refact-usage-{days}d.csv"'
    writer = csv.writer(response)
    writer.writerow(["dimension", "key", "completions", "latency_p50_ms", "accepted_characters", "human_characters"])
    for day in usage_by_day(viewer=request.user, days=days):
        writer.writerow(["day", day.day.isoformat(), day.completions, day.latency_p50_ms, day.accepted_characters, ""])
    for name in DIMENSIONS:
        for row in usage_breakdown(viewer=request.user, by=name, days=days):
            writer.writerow(
                [
                    name,
                    _safe(row.key),
                    row.completions,
                    row.latency_p50_ms,
                    row.accepted_characters,
                    row.human_characters,
                ]
            )
    return response


def _safe(value: str) -> str:
    """No spreadsheet formula injection from user-chosen names."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
