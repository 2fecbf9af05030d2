"""Cron expressions evaluated in a job's IANA timezone, correct across DST changes.

croniter parses and iterates the expression over *naive local wall-clock* times; this module
maps each local time to a UTC instant itself, because croniter's own timezone handling fires
fixed-time jobs twice when clocks fall back. The rules (see docs/scheduling.md):

- Expressions have 5 fields, or 6 with **seconds first** (``sec min hour dom month dow``, as in
  cron-parser/Quartz), or an alias (``@hourly``, ``@daily``, ``@midnight``, ``@weekly``,
  ``@monthly``, ``@yearly``, ``@annually``).
- Spring forward: a local time that does not exist fires once, at the instant the clocks jump
  (``0 2 * * *`` in Europe/Berlin fires at 03:00 local on the transition day).
- Fall back: a local time that occurs twice fires once, at its first occurrence, unless the
  expression's hour field is ``*`` (it runs every hour): then it follows real time and also
  fires during the repeated hour, so ``*/5 * * * *`` has no one-hour hole.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_LOOKAHEAD_STEPS = 100_000
"""Guards the loops that skip candidates inside a DST gap or fold (a fold lasts hours at most)."""


def _normalise(expr: str) -> tuple[str, bool]:
    """Returns (expression for croniter, whether it has a seconds field)."""
    text = " ".join(expr.split())
    text = _ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ValueError(f"cron must have 5 fields, or 6 with seconds first (got {len(fields)})")
    return text, len(fields) == 6


def _hour_is_wildcard(expr: str, has_seconds: bool) -> bool:
    hour = expr.split(" ")[2 if has_seconds else 1]
    return hour in ("*", "*/1")


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc


def _exists(naive: datetime, tz: tzinfo, fold: int) -> bool:
    local = naive.replace(tzinfo=tz, fold=fold)
    return local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


def _resolve(naive: datetime, tz: tzinfo, fold: int) -> datetime:
    """UTC instant of a local wall-clock time; a time inside a DST gap maps to the gap's end
    (the instant the clocks jump), like Vixie cron runs skipped jobs right after the change."""
    utc = naive.replace(tzinfo=tz, fold=fold).astimezone(UTC)
    if _exists(naive, tz, fold):
        return utc
    # PEP 495: inside a gap the two folds resolve to either side of the transition.
    other = naive.replace(tzinfo=tz, fold=1 - fold).astimezone(UTC)
    lo, hi = min(utc, other), max(utc, other)
    post_gap = hi.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == post_gap:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def _is_ambiguous(naive: datetime, tz: tzinfo) -> bool:
    """True for a local time that occurs twice (clocks fell back over it)."""
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    return first.utcoffset() != second.utcoffset() and _exists(naive, tz, 0)


def _iter_local(expr: str, has_seconds: bool, start: datetime) -> croniter:
    return croniter(expr, start, second_at_beginning=has_seconds)


def _first_occurrence_after(expr: str, has_seconds: bool, tz: tzinfo, after: datetime) -> datetime:
    """First fire > after where each local time counts once (first occurrence)."""
    # Inside the second pass of a repeated hour, the first occurrences of the rest of that
    # hour are already past; the loop skips them (at most one hour of fires, once a year).
    start = after.astimezone(tz).replace(tzinfo=None)
    it = _iter_local(expr, has_seconds, start)
    for _ in range(_MAX_LOOKAHEAD_STEPS):
        candidate = _resolve(it.get_next(datetime), tz, 0)
        if candidate > after:
            return candidate
    raise ValueError(f"cron {expr!r} has no fire time after {after.isoformat()}")


def _second_occurrence_before(
    expr: str, has_seconds: bool, tz: ZoneInfo, after: datetime, limit: datetime
) -> datetime | None:
    """Earliest second-pass occurrence of a repeated local time in (after, limit), if any."""
    local_after, local_limit = after.astimezone(tz), limit.astimezone(tz)
    fold_near = (
        local_after.fold == 1
        or local_limit.fold == 1
        or (local_after.utcoffset() or timedelta()) > (local_limit.utcoffset() or timedelta())
    )
    if not fold_near:
        return None
    second_pass = (local_after if local_after.fold == 1 else local_limit).utcoffset()
    assert second_pass is not None
    start = (after + second_pass).replace(tzinfo=None)
    it = _iter_local(expr, has_seconds, start)
    for _ in range(_MAX_LOOKAHEAD_STEPS):
        naive = it.get_next(datetime)
        if (naive - second_pass).replace(tzinfo=UTC) >= limit:
            return None
        if _is_ambiguous(naive, tz):
            candidate = _resolve(naive, tz, 1)
            if after < candidate < limit:
                return candidate
    return None


def next_cron_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first fire time of `cron` in `timezone` strictly after `after` (aware), in UTC."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    expr, has_seconds = _normalise(cron)
    tz = _zone(timezone)
    after = after.astimezone(UTC)
    try:
        first = _first_occurrence_after(expr, has_seconds, tz, after)
        if _hour_is_wildcard(expr, has_seconds):
            repeat = _second_occurrence_before(expr, has_seconds, tz, after, first)
            if repeat is not None:
                return repeat
    except CroniterError as exc:
        raise ValueError(f"invalid cron {cron!r}: {exc}") from exc
    return first


def validate_cron(expr: str, timezone: str = "UTC") -> list[str]:
    """Human-readable problems with a cron expression and timezone; empty when valid."""
    errors: list[str] = []
    tz_ok = True
    try:
        _zone(timezone)
    except ValueError as exc:
        errors.append(str(exc))
        tz_ok = False
    try:
        text, has_seconds = _normalise(expr)
    except ValueError as exc:
        return [*errors, str(exc)]
    if not croniter.is_valid(text, second_at_beginning=has_seconds):
        return [*errors, f"invalid cron expression {expr!r}"]
    if tz_ok:
        try:
            next_cron_fire(expr, timezone, datetime.now(UTC))
        except ValueError:
            errors.append(f"cron {expr!r} never fires")
    return errors
