"""A small server-rendered bar chart (SVG), so the dashboard needs no chart library.

Pure code: ``daily_bar_chart`` turns per-day counts into the geometry the template
draws (``templates/matching/_bar_chart.svg``). One group per day, one bar per series.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    day: date
    series: str


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    plot_left: int
    plot_right: int
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[tuple[float, date]]  # x position and the day of every 7th group
    series: list[str]
    maximum: int


def days_ending(last: date, count: int) -> list[date]:
    """``count`` consecutive days ending with ``last``, oldest first."""
    return [last - timedelta(days=count - 1 - i) for i in range(count)]


def _nice_maximum(value: int) -> int:
    """The axis top: at least 1, rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 1:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def daily_bar_chart(
    days: list[date],
    series: dict[str, dict[date, int]],
    *,
    width: int = 720,
    height: int = 200,
) -> Chart:
    """Bars for each day of ``days`` and each named series (counts per day; missing is 0)."""
    left, right, top, bottom = 36, width - 8, 10, height - 24
    names = list(series)
    maximum = _nice_maximum(max((v for counts in series.values() for v in counts.values()), default=0))
    group = (right - left) / max(1, len(days))
    bar_width = max(1.0, (group - 2) / max(1, len(names)))
    scale = (bottom - top) / maximum
    bars = []
    for i, day in enumerate(days):
        for j, name in enumerate(names):
            value = series[name].get(day, 0)
            h = value * scale
            bars.append(
                Bar(
                    x=round(left + i * group + 1 + j * bar_width, 2),
                    y=round(bottom - h, 2),
                    width=round(bar_width, 2),
                    height=round(h, 2),
                    value=value,
                    day=day,
                    series=name,
                )
            )
    steps = 4 if maximum >= 4 else maximum
    ticks = [
        Tick(y=round(bottom - maximum * k / steps * scale, 2), value=maximum * k // steps)
        for k in range(steps + 1)
    ]
    labels = [(round(left + i * group + group / 2, 2), day) for i, day in enumerate(days) if i % 7 == 0]
    return Chart(
        width=width,
        height=height,
        plot_top=top,
        plot_bottom=bottom,
        plot_left=left,
        plot_right=right,
        bars=bars,
        ticks=ticks,
        labels=labels,
        series=names,
        maximum=maximum,
    )
