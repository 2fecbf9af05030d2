"""The job page's timeline chart: geometry for a server-rendered SVG.

Each run is a point at its start time; its height is the interval the scheduler chose after
it (next run - end of run, log scale) and its colour the source of that choice. A strip
under the chart shows each run's outcome. The template draws what this module computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cronicorn.service.dashboard import TimelineRun
from cronicorn.web.format import clock, duration

WIDTH = 960
HEIGHT = 240
LEFT = 64
RIGHT = 16
TOP = 14
PLOT_BOTTOM = 184
STRIP_TOP = 196
STRIP_HEIGHT = 14

SOURCE_GROUPS = {
    "ai": "ai",
    "ai_preliminary": "ai",
    "ai_reused": "ai_reused",
    "hint": "hint",
    "baseline_cron": "baseline",
    "baseline_interval": "baseline",
    "default": "baseline",
    "backoff": "backoff",
    "clamped_min": "clamped",
    "clamped_max": "clamped",
    "paused": "paused",
}
LEGEND = ("ai", "ai_reused", "hint", "baseline", "backoff", "clamped", "paused")
TICKS_S = (1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400)


@dataclass(frozen=True, slots=True)
class Point:
    run_id: str
    x: float
    y: float | None
    group: str
    outcome: str
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    points: list[Point]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    line: str
    """SVG polyline points joining the chosen intervals."""
    strip_width: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_edge: int = WIDTH - RIGHT
    top: int = TOP
    plot_bottom: int = PLOT_BOTTOM
    strip_top: int = STRIP_TOP
    strip_height: int = STRIP_HEIGHT
    legend: tuple[str, ...] = LEGEND


def group_of(source: str | None) -> str:
    return SOURCE_GROUPS.get(source or "", "none")


def _interval_s(run: TimelineRun) -> float | None:
    if run.next_run_at is None:
        return None
    end = run.finished_at or run.started_at
    return max(1.0, (run.next_run_at - end).total_seconds())


def build_timeline(runs: Sequence[TimelineRun]) -> Timeline | None:
    """None when there is nothing to draw."""
    if not runs:
        return None
    t0 = runs[0].started_at
    t1 = runs[-1].started_at
    span = max((t1 - t0).total_seconds(), 1.0)
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(when: datetime) -> float:
        return LEFT + plot_width * ((when - t0).total_seconds() / span if len(runs) > 1 else 0.5)

    intervals = [_interval_s(run) for run in runs]
    known = [v for v in intervals if v is not None]
    low = math.log10(min(known)) if known else 0.0
    high = math.log10(max(known)) if known else 1.0
    if high - low < 1:
        low, high = low - 0.5, high + 0.5

    def y_of(seconds: float) -> float:
        ratio = (math.log10(seconds) - low) / (high - low)
        return PLOT_BOTTOM - 6 - ratio * (PLOT_BOTTOM - TOP - 12)

    points = []
    for run, interval in zip(runs, intervals, strict=True):
        y = y_of(interval) if interval is not None else None
        chosen = f", next in {duration(interval * 1000)}" if interval is not None else ""
        label = f"{clock(run.started_at)}: {run.status}{chosen} ({run.source or 'no schedule'})"
        points.append(
            Point(
                run.id, round(x_of(run.started_at), 1), y, group_of(run.source), run.status, label
            )
        )
    line = " ".join(f"{p.x},{p.y:.1f}" for p in points if p.y is not None)
    y_ticks = [
        Tick(round(y_of(s), 1), duration(s * 1000)) for s in TICKS_S if low <= math.log10(s) <= high
    ]
    x_ticks = [Tick(LEFT, clock(t0))]
    if len(runs) > 1:
        x_ticks.append(Tick(WIDTH - RIGHT, clock(t1)))
    strip = max(1.5, min(10.0, plot_width / len(runs) - 1))
    return Timeline(points, y_ticks, x_ticks, line, round(strip, 1))
