"""The governor: the one pure function that decides when a job runs next (SPEC §5).

Every decision carries a `ScheduleSource` saying which rule chose it, so users (and the next
AI call) can see why a job runs when it does. Policy, in order:

1. A `paused_until` in the future wins over everything (`paused`).
2. `retry_soon` (the AI recommended `retry_failed_endpoints`) → the minimum interval
   (`clamped_min`: the run is pinned to the lower bound of the job's window).
3. Otherwise a candidate, the first in the future of (`CANDIDATE_PRECEDENCE`): the user's
   live hint (`hint`: `now + interval_ms`, or its `next_run_at`; ignored once expired);
   the AI's `next_run_at` (`ai`); the reused AI decision's cadence (`ai_reused`); the plan's
   `preliminary_next_run_at` (`ai_preliminary`); else the baseline (`baseline_cron`,
   `baseline_interval`, or `backoff` after failures; `default` without a baseline).
4. The candidate is clamped into `[now + min_interval_ms, now + max_interval_ms]`
   (`clamped_min` / `clamped_max`); `proposed_at` keeps the unclamped candidate.

`now` is the run's *end* time, so a run that outlived its planned next time never schedules
into the past: every result is ≥ now (≥ now + min unless paused).

Failures use the same rules: `fallback_next_run` is the governor without AI input, for a run
that failed or was aborted before anything was proposed (the engine's failed and aborted runs,
the store's job whose secrets cannot be decrypted). It never raises: a job whose own schedule
cannot be evaluated gets a plain backoff from its minimum interval, so no job hot-loops.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronicorn.domain.cron import next_cron_fire, validate_cron
from cronicorn.domain.models import (
    DEFAULT_INTERVAL_MS,
    Hint,
    JobSnapshot,
    NextRun,
    ScheduleSource,
)

__all__ = [
    "CANDIDATE_PRECEDENCE",
    "MAX_BACKOFF_FACTOR",
    "backoff_factor",
    "baseline_next_run",
    "fallback_next_run",
    "hint_next_run_at",
    "live_hint",
    "next_cron_fire",
    "next_run_decision",
    "validate_cron",
]

MAX_BACKOFF_FACTOR = 32
"""Interval multiplier cap: x2 per consecutive failure, at most x32 (five failures)."""
MIN_BACKOFF_MS = 1_000
"""The last-resort backoff (see `fallback_next_run`) starts and ends at least this far out."""


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def backoff_factor(consecutive_failures: int) -> int:
    """2^failures, capped at MAX_BACKOFF_FACTOR; 1 when the last run succeeded."""
    failures = max(0, consecutive_failures)
    return min(MAX_BACKOFF_FACTOR, 1 << min(failures, 16))


def baseline_next_run(
    job: JobSnapshot, now: datetime, consecutive_failures: int, default_interval_ms: int
) -> NextRun:
    """The rules-only candidate (no AI, no clamps, no pause): cron, interval or default.

    Cron jobs keep their cron times after failures (the cron *is* the promise and cannot hot
    loop); interval and default schedules back off x2 per consecutive failure, capped at x32.
    Unclamped: `next_run_decision` applies min/max and pause; call that for the final time.
    """
    now = _utc(now, "now")
    if job.cron:
        at = next_cron_fire(job.cron, job.timezone, now)
        return NextRun(at=at, source=ScheduleSource.BASELINE_CRON, proposed_at=at)
    interval_ms = job.interval_ms if job.interval_ms else default_interval_ms
    factor = backoff_factor(consecutive_failures)
    if factor > 1:
        source = ScheduleSource.BACKOFF
    elif job.interval_ms:
        source = ScheduleSource.BASELINE_INTERVAL
    else:
        source = ScheduleSource.DEFAULT
    at = now + timedelta(milliseconds=interval_ms * factor)
    return NextRun(at=at, source=source, proposed_at=at)


def live_hint(hint: Hint | None, now: datetime) -> Hint | None:
    """`hint` while it has not expired (`expires_at` after `now`), else None."""
    if hint is None or _utc(hint.expires_at, "hint expires_at") <= _utc(now, "now"):
        return None
    return hint


def hint_next_run_at(hint: Hint | None, now: datetime) -> datetime | None:
    """The hint's proposal at `now`: `now + interval_ms`, or its `next_run_at` (a one-shot
    time that has passed proposes nothing); None for no live hint."""
    live = live_hint(hint, now)
    if live is None:
        return None
    if live.interval_ms is not None:
        return _utc(now, "now") + timedelta(milliseconds=max(0, live.interval_ms))
    if live.next_run_at is not None:
        return _utc(live.next_run_at, "hint next_run_at")
    return None


CANDIDATE_PRECEDENCE: tuple[ScheduleSource, ...] = (
    ScheduleSource.HINT,
    ScheduleSource.AI,
    ScheduleSource.AI_REUSED,
    ScheduleSource.AI_PRELIMINARY,
)
"""Proposals in precedence order (above them: `paused`; below them: the baseline)."""


def _candidate(
    job: JobSnapshot,
    now: datetime,
    consecutive_failures: int,
    proposals: dict[ScheduleSource, datetime | None],
    default_interval_ms: int,
) -> NextRun:
    for source in CANDIDATE_PRECEDENCE:
        proposed = proposals.get(source)
        if proposed is not None:
            at = _utc(proposed, f"{source.value} proposal")
            if at > now:
                return NextRun(at=at, source=source, proposed_at=at)
    return baseline_next_run(job, now, consecutive_failures, default_interval_ms)


def next_run_decision(
    job: JobSnapshot,
    now: datetime,
    *,
    consecutive_failures: int,
    ai_next_run_at: datetime | None = None,
    reused_next_run_at: datetime | None = None,
    preliminary_next_run_at: datetime | None = None,
    retry_soon: bool = False,
    default_interval_ms: int = DEFAULT_INTERVAL_MS,
) -> NextRun:
    """When the job runs next and which rule chose it (see the module docstring).

    `now` is the run's end time (aware); `consecutive_failures` counts this run (0 if it
    succeeded). The result is aware UTC, never before `now`.
    """
    now = _utc(now, "now")
    lower = now + timedelta(milliseconds=max(0, job.min_interval_ms))
    upper = max(lower, now + timedelta(milliseconds=max(0, job.max_interval_ms)))
    proposals = {
        ScheduleSource.HINT: hint_next_run_at(job.hint, now),
        ScheduleSource.AI: ai_next_run_at,
        ScheduleSource.AI_REUSED: reused_next_run_at,
        ScheduleSource.AI_PRELIMINARY: preliminary_next_run_at,
    }
    candidate = _candidate(job, now, consecutive_failures, proposals, default_interval_ms)
    proposed = candidate.at
    if job.paused_until is not None:
        paused_until = _utc(job.paused_until, "paused_until")
        if paused_until > now:
            return NextRun(at=paused_until, source=ScheduleSource.PAUSED, proposed_at=proposed)
    if retry_soon or proposed < lower:
        return NextRun(at=lower, source=ScheduleSource.CLAMPED_MIN, proposed_at=proposed)
    if proposed > upper:
        return NextRun(at=upper, source=ScheduleSource.CLAMPED_MAX, proposed_at=proposed)
    return candidate


def fallback_next_run(
    job: JobSnapshot,
    now: datetime,
    *,
    consecutive_failures: int,
    retry_soon: bool = False,
    default_interval_ms: int = DEFAULT_INTERVAL_MS,
) -> NextRun:
    """`next_run_decision` without AI input, for a run that failed or was aborted before
    anything was proposed. Never raises.

    A job whose schedule cannot be evaluated (a cron or time zone that no longer parses)
    backs off from its minimum interval instead: `max(min_interval_ms, 1 s)` doubled per
    consecutive failure (at most x32), capped at `max(max_interval_ms, 1 s)`, source
    `backoff`. The error is not reported here: the same job's normal scheduling fails too,
    and the engine records that once as a `schedule` error.
    """
    try:
        return next_run_decision(
            job,
            now,
            consecutive_failures=consecutive_failures,
            retry_soon=retry_soon,
            default_interval_ms=default_interval_ms,
        )
    except Exception:
        base_ms = max(job.min_interval_ms, MIN_BACKOFF_MS)
        cap_ms = max(job.max_interval_ms, MIN_BACKOFF_MS)
        delay_ms = min(base_ms * backoff_factor(consecutive_failures), cap_ms)
        return NextRun(at=now + timedelta(milliseconds=delay_ms), source=ScheduleSource.BACKOFF)
