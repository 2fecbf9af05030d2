"""Cron expressions evaluated in a job's IANA timezone, as Debian cron runs them.

The evaluation is `cronsim` (the evaluator Healthchecks uses; it follows Debian cron, see
docs/adr/0003-cronsim-for-cron-semantics.md). This module adds what a scheduler needs on top
and is the one place that says what a cron expression means (the API validates with it too).
The rules (docs/scheduling.md):

- 5 fields, or 6 with **seconds first** (``sec min hour dom month dow``, as in
  cron-parser/Quartz), or an alias (``@hourly``, ``@daily``, ``@midnight``, ``@weekly``,
  ``@monthly``, ``@yearly``, ``@annually``).
- Day-of-month and day-of-week: when either field starts with ``*`` both must match (AND),
  otherwise either may match (OR), as in Debian cron.
- DST, as in Debian cron: a job whose minute and hour fields both start with something other
  than ``*`` ("fixed time") runs on the wall clock: a local time skipped by spring forward fires
  once when the clocks jump, a local time repeated by fall back fires once, at its first
  occurrence. Any other job ("wildcard") follows real time: no catch-up for skipped times, and
  it keeps firing through the repeated hour.

Deliberate choices where the product differs from calling cronsim directly (each has a test):

- The result is always strictly after ``after``: inside a repeated hour, cronsim can return the
  first occurrence of a local time that is already past; those are skipped.
- A single-value range with a step (``5-5/2``) is the single value, as in Debian's crontab
  parser; cronsim reads it as ``5/2`` (5, 7, …, 59).
- 6-field expressions get the same DST rules as their 5-field part (cronsim applies no DST
  rule to 6-field expressions), so ``0 0 2 * * *`` runs once per local day like ``0 2 * * *``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = ["CronSpec", "check_cron_expression", "next_cron_fire", "parse_cron", "validate_cron"]

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_SKIPS = 100_000
"""Guards the loop that skips past fires inside a repeated hour (at most a few hours' worth)."""
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CronSpec:
    """A validated expression: `text` as cronsim reads it, `seconds` for a 6-field one."""

    text: str
    seconds: tuple[int, ...] | None
    fixed_time: bool

    @property
    def minutes_part(self) -> str:
        """The 5-field part (minute … day-of-week)."""
        return " ".join(self.text.split(" ")[-5:])


def _debian_term(term: str) -> str:
    """`a-a/n` is the single value `a` in Debian's crontab parser (cronsim reads `a/n`)."""
    if "/" in term and "-" in term:
        span, _, step = term.partition("/")
        low, _, high = span.partition("-")
        if low and low.upper() == high.upper() and step.isdigit():
            return low
    return term


def _debian_field(field: str) -> str:
    return ",".join(_debian_term(term) for term in field.split(","))


def _never_fires(fields: list[str]) -> str | None:
    """Why an expression that cronsim refuses for its day-of-month never fires, if that is it."""
    dom, month = fields[-3], fields[-2]
    probe = [*fields]
    probe[-3] = "*"
    try:
        CronSim(" ".join(probe), _PROBE)
        CronSim(" ".join([*fields[:-3], dom, "*", "*"]), _PROBE)
    except CronSimError:
        return None
    return f"day-of-month {dom} does not occur in month {month}"


@lru_cache(maxsize=1024)
def parse_cron(expr: str) -> CronSpec:
    """Parse and check `expr`; ValueError with one clear sentence when it is not usable."""
    text = " ".join(expr.split())
    text = _ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise ValueError(f"unknown cron alias {text!r} (use one of {', '.join(_ALIASES)})")
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ValueError(f"cron must have 5 fields, or 6 with seconds first (got {len(fields)})")
    fields = [_debian_field(field) for field in fields]
    text = " ".join(fields)
    try:
        parsed = CronSim(text, _PROBE)
    except CronSimError as exc:
        reason = _never_fires(fields)
        if reason is not None:
            raise ValueError(f"cron {expr.strip()!r} never fires: {reason}") from None
        layout = " (6 fields: second minute hour day-of-month month day-of-week)"
        hint = layout if len(fields) == 6 else ""
        raise ValueError(
            f"invalid cron expression {expr.strip()!r}: {str(exc).lower()}{hint}"
        ) from None
    try:
        next(parsed)
    except StopIteration:
        raise ValueError(f"cron {expr.strip()!r} never fires") from None
    seconds = tuple(sorted(parsed.seconds)) if len(fields) == 6 else None
    minute, hour = fields[-5], fields[-4]
    fixed = not minute.startswith("*") and not hour.startswith("*")
    return CronSpec(text=text, seconds=seconds, fixed_time=fixed)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc


def next_cron_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first fire time of `cron` in `timezone` strictly after `after` (aware), in UTC."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    spec = parse_cron(cron)
    tz = _zone(timezone)
    after = after.astimezone(UTC)
    try:
        if spec.seconds is None or not spec.fixed_time:
            # cronsim evaluates 6-field wildcard expressions on real time, like 5-field ones.
            it = CronSim(spec.text, after.astimezone(tz))
            for _ in range(_MAX_SKIPS):
                fire = next(it).astimezone(UTC)
                if fire > after:
                    return fire
        else:
            # Seconds on top of the 5-field part, so the fixed-time DST rules apply to it too.
            it = CronSim(spec.minutes_part, (after - timedelta(minutes=1)).astimezone(tz))
            for _ in range(_MAX_SKIPS):
                minute = next(it).astimezone(UTC)
                for second in spec.seconds:
                    fire = minute + timedelta(seconds=second)
                    if fire > after:
                        return fire
    except StopIteration:
        pass
    raise ValueError(f"cron {cron!r} has no fire time after {after.isoformat()}")


def check_cron_expression(expr: str) -> str:
    """The one cron check the API and the scheduler share: the expression with its whitespace
    normalised, or ValueError (bad syntax, unknown alias, an expression that never fires)."""
    parse_cron(expr)
    return " ".join(expr.split())


def validate_cron(expr: str, timezone: str = "UTC") -> list[str]:
    """Human-readable problems with a cron expression and timezone; empty when valid."""
    errors: list[str] = []
    try:
        _zone(timezone)
    except ValueError as exc:
        errors.append(str(exc))
    try:
        parse_cron(expr)
    except ValueError as exc:
        errors.append(str(exc))
    return errors
