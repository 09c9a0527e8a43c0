"""Hand-drawn SVG bar charts: geometry computed here, drawn by the template (no JavaScript, no CDN)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 160
TOP = 10
BOTTOM = 20


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class BarChart:
    title: str
    unit: str
    bars: list[Bar]
    maximum: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> int:
        return self.height - BOTTOM

    @property
    def empty(self) -> bool:
        return self.maximum == 0


def bar_chart(*, title: str, unit: str, points: list[tuple[str, int]]) -> BarChart:
    maximum = max((value for _, value in points), default=0)
    slot = WIDTH / max(len(points), 1)
    usable = HEIGHT - TOP - BOTTOM
    bars = []
    for index, (label, value) in enumerate(points):
        height = usable * value / maximum if maximum else 0
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.1, 1),
                y=round(HEIGHT - BOTTOM - height, 1),
                width=round(slot * 0.8, 1),
                height=round(height, 1),
                label=label,
                value=value,
            )
        )
    return BarChart(title=title, unit=unit, bars=bars, maximum=maximum)
