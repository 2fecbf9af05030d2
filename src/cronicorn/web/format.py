"""Template filters: times, durations, rates. Pure functions of their inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

NONE = "\u2013"
"""Shown for a missing value (an en dash)."""
BODY_CAP = 4000
"""Characters of a stored response body shown on the run page."""


def duration(ms: float | int | None) -> str:
    """A short human duration: 850 ms, 12.5 s, 4 min, 2 h 5 min, 3 d."""
    if ms is None:
        return NONE
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = int(minutes // 60)
    if hours < 48:
        rest = int(minutes % 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} d"


def relative(when: datetime | None, now: datetime | None = None) -> str:
    """`in 3 min`, `12 s ago`, `now`."""
    if when is None:
        return NONE
    now = now or datetime.now(UTC)
    delta_ms = (when - now).total_seconds() * 1000
    if abs(delta_ms) < 1000:
        return "now"
    text = duration(abs(delta_ms))
    return f"in {text}" if delta_ms > 0 else f"{text} ago"


def iso(when: datetime | None) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if when else ""


def clock(when: datetime | None) -> str:
    """`2026-11-30 14:05:09 UTC`."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if when else NONE


def percent(rate: float | None) -> str:
    return NONE if rate is None else f"{rate * 100:.0f}%"


def pretty_json(value: Any, cap: int = BODY_CAP) -> str:
    """Indented JSON (or the text as is), cut at `cap` characters. Escaped by the template."""
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text if len(text) <= cap else text[:cap] + f"\n… ({len(text) - cap} more characters)"


def per_minute(count: int, since: datetime | None, now: datetime) -> str:
    """Throughput since `since`: `count` per minute, one decimal."""
    if since is None or not isinstance(count, int):
        return NONE
    minutes = (now - since).total_seconds() / 60
    return f"{count / minutes:.1f}" if minutes > 0 else NONE


FILTERS: dict[str, Callable[..., str]] = {
    "duration": duration,
    "relative": relative,
    "iso": iso,
    "clock": clock,
    "percent": percent,
    "pretty_json": pretty_json,
    "per_minute": per_minute,
}
