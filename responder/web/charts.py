"""Charts drawn on the server as SVG shapes: bars of a count per day, lines of a time per
day for a few series. The template writes the shapes; no script, no build step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from responder.actions import format_duration

WIDTH, HEIGHT = 560, 200
LEFT, BOTTOM, TOP = 48, 24, 10
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the tooltip: day and value


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline>
    dots: Sequence[tuple[float, float, str]]


@dataclass(frozen=True, slots=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: Sequence[Bar]
    lines: Sequence[Line]
    y_ticks: Sequence[Tick]
    x_ticks: Sequence[Tick]
    empty: bool


DAILY_UP_TO = 62  # days: a longer span is charted by week, or its bars are hairlines
Bucket = Callable[[date], date]


def buckets(first: date, last: date) -> tuple[list[date], Bucket]:
    """The chart's slots from `first` to `last`: days, or weeks (from Monday) for long
    spans; and which slot a day falls in."""
    if (last - first).days < DAILY_UP_TO:
        return [first + timedelta(days=i) for i in range((last - first).days + 1)], _same
    monday = first - timedelta(days=first.weekday())
    weeks = (last - monday).days // 7 + 1
    return [monday + timedelta(weeks=i) for i in range(weeks)], _week_of


def _same(day: date) -> date:
    return day


def _week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def bars(values: Mapping[date, int], span: Sequence[date]) -> Chart:
    top = max([*values.values(), 1])
    slot = (WIDTH - LEFT) / max(len(span), 1)
    inner = HEIGHT - BOTTOM - TOP
    out = []
    for i, day in enumerate(span):
        n = values.get(day, 0)
        h = inner * n / top
        out.append(
            Bar(LEFT + i * slot + 1, HEIGHT - BOTTOM - h, max(slot - 2, 1), h, f"{day}: {n}")
        )
    return Chart(WIDTH, HEIGHT, out, [], _y_ticks(top, _count), _x_ticks(span), not values)


def lines(series: Mapping[str, Mapping[date, float]], span: Sequence[date]) -> Chart:
    top = max([v for s in series.values() for v in s.values()] + [1.0])
    slot = (WIDTH - LEFT) / max(len(span), 1)
    inner = HEIGHT - BOTTOM - TOP
    out = []
    for i, (name, values) in enumerate(series.items()):
        dots = []
        for j, day in enumerate(span):
            if day in values:
                x = LEFT + j * slot + slot / 2
                y = HEIGHT - BOTTOM - inner * values[day] / top
                dots.append((round(x, 1), round(y, 1), f"{name} {day}: {duration(values[day])}"))
        points = " ".join(f"{x},{y}" for x, y, _ in dots)
        out.append(Line(name, COLOURS[i % len(COLOURS)], points, dots))
    return Chart(WIDTH, HEIGHT, [], out, _y_ticks(top, duration), _x_ticks(span), not series)


def _y_ticks(top: float, label: Callable[[float], str]) -> list[Tick]:
    inner = HEIGHT - BOTTOM - TOP
    return [Tick(HEIGHT - BOTTOM - inner * f, label(top * f)) for f in (0.0, 0.5, 1.0)]


def _count(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _x_ticks(span: Sequence[date]) -> list[Tick]:
    if not span:
        return []
    slot = (WIDTH - LEFT) / len(span)
    every = max(len(span) // 6, 1)
    return [
        Tick(LEFT + i * slot + slot / 2, day.strftime("%m-%d"))
        for i, day in enumerate(span)
        if i % every == 0
    ]


def duration(seconds: float | None) -> str:
    """A time span as the rest of the service says it (`actions.format_duration`)."""
    return "-" if seconds is None else format_duration(round(seconds))
