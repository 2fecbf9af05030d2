"""The governor (SPEC §5): properties over random inputs, one example per source, DST."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain.governor import (
    MAX_BACKOFF_FACTOR,
    baseline_next_run,
    fallback_next_run,
    hint_next_run_at,
    live_hint,
    next_cron_fire,
    next_run_decision,
    validate_cron,
)
from cronicorn.domain.models import Hint, JobSnapshot, ScheduleSource

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def job(**fields: object) -> JobSnapshot:
    return JobSnapshot(id="j1", tenant_id="t1", name="job", definition="poll", **fields)  # type: ignore[arg-type]


def ms(n: int) -> timedelta:
    return timedelta(milliseconds=n)


# -- strategies -------------------------------------------------------------------------------

nows = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
offsets = st.integers(min_value=-30 * 86_400_000, max_value=30 * 86_400_000)
crons = st.sampled_from([None, "*/5 * * * *", "0 2 * * *", "30 9 * * 1-5", "0 0 1 * *"])
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])


@st.composite
def jobs(draw: st.DrawFn) -> JobSnapshot:
    min_ms = draw(st.integers(min_value=0, max_value=86_400_000))
    max_ms = draw(st.integers(min_value=min_ms, max_value=30 * 86_400_000))
    cron = draw(crons)
    interval = None if cron else draw(st.none() | st.integers(1_000, 10 * 86_400_000))
    return job(
        cron=cron,
        timezone=draw(zones),
        interval_ms=interval,
        min_interval_ms=min_ms,
        max_interval_ms=max_ms,
    )


@st.composite
def decisions(draw: st.DrawFn) -> tuple[JobSnapshot, datetime, dict[str, object]]:
    the_job, now = draw(jobs()), draw(nows)
    maybe_time = st.none() | offsets.map(lambda o: now + ms(o))
    kwargs: dict[str, object] = {
        "consecutive_failures": draw(st.integers(0, 50)),
        "ai_next_run_at": draw(maybe_time),
        "reused_next_run_at": draw(maybe_time),
        "preliminary_next_run_at": draw(maybe_time),
        "retry_soon": draw(st.booleans()),
    }
    return the_job, now, kwargs


# -- properties --------------------------------------------------------------------------------


@given(decisions())
def test_result_within_min_max_window_and_never_in_past(
    case: tuple[JobSnapshot, datetime, dict[str, object]],
) -> None:
    the_job, now, kwargs = case
    decision = next_run_decision(the_job, now, **kwargs)  # type: ignore[arg-type]
    assert decision.source is not ScheduleSource.PAUSED
    assert decision.at >= now
    assert now + ms(the_job.min_interval_ms) <= decision.at <= now + ms(the_job.max_interval_ms)
    assert decision.at.tzinfo is not None
    assert decision.at.utcoffset() == timedelta(0)
    assert decision.proposed_at is not None


@given(decisions(), st.integers(min_value=1, max_value=60 * 86_400_000))
def test_future_pause_wins_over_everything(
    case: tuple[JobSnapshot, datetime, dict[str, object]], pause_ms: int
) -> None:
    the_job, now, kwargs = case
    paused = replace(the_job, paused_until=now + ms(pause_ms))
    decision = next_run_decision(paused, now, **kwargs)  # type: ignore[arg-type]
    assert decision.source is ScheduleSource.PAUSED
    assert decision.at == now + ms(pause_ms)


@given(decisions(), st.integers(min_value=0, max_value=60 * 86_400_000))
def test_past_pause_is_ignored(
    case: tuple[JobSnapshot, datetime, dict[str, object]], ago_ms: int
) -> None:
    the_job, now, kwargs = case
    paused = replace(the_job, paused_until=now - ms(ago_ms))
    decision = next_run_decision(paused, now, **kwargs)  # type: ignore[arg-type]
    assert decision.source is not ScheduleSource.PAUSED
    assert decision.at >= now + ms(the_job.min_interval_ms)


@given(st.integers(1_000, 86_400_000), st.integers(0, 40), nows)
def test_backoff_monotone_in_failures_and_capped(
    interval: int, failures: int, now: datetime
) -> None:
    the_job = job(interval_ms=interval)
    fewer = baseline_next_run(the_job, now, failures, 3_600_000)
    more = baseline_next_run(the_job, now, failures + 1, 3_600_000)
    assert fewer.at <= more.at
    assert more.at - now <= ms(interval * MAX_BACKOFF_FACTOR)
    assert fewer.at - now == ms(interval * min(2**failures, MAX_BACKOFF_FACTOR))
    assert more.source is ScheduleSource.BACKOFF


# -- failures: the same governor, and a last resort that cannot raise ----------------------------

broken_schedules = st.sampled_from(
    [("not a cron", "UTC"), ("0 0 31 2 *", "UTC"), ("*/5 * * * *", "Mars/Olympus_Mons")]
)


@given(decisions())
def test_fallback_is_the_governor_without_ai_input(
    case: tuple[JobSnapshot, datetime, dict[str, object]],
) -> None:
    """A failed or aborted run (engine) and an unloadable job (store) get what the governor
    decides without proposals: the same clamps, backoff and sources."""
    the_job, now, kwargs = case
    failures, retry = kwargs["consecutive_failures"], kwargs["retry_soon"]
    assert isinstance(failures, int)
    assert isinstance(retry, bool)
    fallback = fallback_next_run(the_job, now, consecutive_failures=failures, retry_soon=retry)
    assert fallback == next_run_decision(
        the_job, now, consecutive_failures=failures, retry_soon=retry
    )


@given(jobs(), nows, st.integers(0, 50), broken_schedules, st.booleans())
def test_fallback_for_a_schedule_that_cannot_be_evaluated_backs_off(
    the_job: JobSnapshot, now: datetime, failures: int, broken: tuple[str, str], retry: bool
) -> None:
    """The governor raises for a cron or time zone it cannot evaluate; the fallback never
    does: it backs off from max(min_interval, 1 s), x2 per failure up to x32, at most
    max(max_interval, 1 s) — never a hot loop."""
    cron, zone = broken
    bad = replace(the_job, cron=cron, timezone=zone)
    with pytest.raises(ValueError):
        next_run_decision(bad, now, consecutive_failures=failures)
    fewer = fallback_next_run(bad, now, consecutive_failures=failures, retry_soon=retry)
    more = fallback_next_run(bad, now, consecutive_failures=failures + 1, retry_soon=retry)
    base, cap = max(bad.min_interval_ms, 1_000), max(bad.max_interval_ms, 1_000)
    assert fewer.source is more.source is ScheduleSource.BACKOFF
    assert fewer.at - now == ms(min(base * min(2**failures, MAX_BACKOFF_FACTOR), cap))
    assert now + ms(1_000) <= fewer.at <= more.at <= now + ms(cap)


def test_fallback_after_failures_backs_off_an_interval_job() -> None:
    decision = fallback_next_run(job(interval_ms=60_000), NOW, consecutive_failures=3)
    assert (decision.at, decision.source) == (NOW + timedelta(minutes=8), ScheduleSource.BACKOFF)


def test_fallback_for_an_aborted_run_retries_soon() -> None:
    the_job = job(interval_ms=3_600_000, min_interval_ms=30_000)
    decision = fallback_next_run(the_job, NOW, consecutive_failures=0, retry_soon=True)
    assert (decision.at, decision.source) == (NOW + ms(30_000), ScheduleSource.CLAMPED_MIN)


# -- one example per source ---------------------------------------------------------------------


def test_ai_time_in_future_is_used() -> None:
    at = NOW + timedelta(minutes=5)
    decision = next_run_decision(
        job(interval_ms=60_000), NOW, consecutive_failures=0, ai_next_run_at=at
    )
    assert (decision.at, decision.source, decision.proposed_at) == (at, ScheduleSource.AI, at)


def test_ai_time_with_offset_is_normalised_to_utc() -> None:
    at = datetime(2026, 5, 4, 14, 30, tzinfo=BERLIN)  # 12:30 UTC
    decision = next_run_decision(job(), NOW, consecutive_failures=0, ai_next_run_at=at)
    assert decision.at == datetime(2026, 5, 4, 12, 30, tzinfo=UTC)
    assert decision.at.tzinfo is UTC


def test_ai_time_in_past_falls_back_to_preliminary() -> None:
    prelim = NOW + timedelta(minutes=7)
    decision = next_run_decision(
        job(interval_ms=60_000),
        NOW,
        consecutive_failures=0,
        ai_next_run_at=NOW - timedelta(minutes=1),
        preliminary_next_run_at=prelim,
    )
    assert (decision.at, decision.source) == (prelim, ScheduleSource.AI_PRELIMINARY)


def test_stale_ai_and_preliminary_fall_back_to_interval() -> None:
    decision = next_run_decision(
        job(interval_ms=120_000),
        NOW,
        consecutive_failures=0,
        ai_next_run_at=NOW,
        preliminary_next_run_at=NOW - timedelta(hours=1),
    )
    assert (decision.at, decision.source) == (NOW + ms(120_000), ScheduleSource.BASELINE_INTERVAL)


def test_cron_baseline_in_job_timezone() -> None:
    the_job = job(cron="30 9 * * *", timezone="America/New_York")
    decision = next_run_decision(the_job, NOW, consecutive_failures=0)
    assert decision.source is ScheduleSource.BASELINE_CRON
    assert decision.at == datetime(2026, 5, 4, 13, 30, tzinfo=UTC)  # 09:30 EDT


def test_cron_keeps_its_times_after_failures() -> None:
    the_job = job(cron="30 9 * * *", timezone="America/New_York")
    decision = next_run_decision(the_job, NOW, consecutive_failures=4)
    assert (decision.at, decision.source) == (
        datetime(2026, 5, 4, 13, 30, tzinfo=UTC),
        ScheduleSource.BASELINE_CRON,
    )


def test_interval_backoff_source_and_cap() -> None:
    the_job = job(interval_ms=60_000)
    decisions = [next_run_decision(the_job, NOW, consecutive_failures=n) for n in range(8)]
    assert [d.at - NOW for d in decisions] == [
        timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 32, 32)
    ]
    assert decisions[0].source is ScheduleSource.BASELINE_INTERVAL
    assert {d.source for d in decisions[1:]} == {ScheduleSource.BACKOFF}


def test_default_interval_without_baseline_and_its_backoff() -> None:
    ok = next_run_decision(job(), NOW, consecutive_failures=0, default_interval_ms=600_000)
    assert (ok.at, ok.source) == (NOW + timedelta(minutes=10), ScheduleSource.DEFAULT)
    failing = next_run_decision(job(), NOW, consecutive_failures=2, default_interval_ms=600_000)
    assert (failing.at, failing.source) == (NOW + timedelta(minutes=40), ScheduleSource.BACKOFF)
    assert next_run_decision(job(), NOW, consecutive_failures=0).at == NOW + timedelta(hours=1)


def test_clamped_min_keeps_proposal() -> None:
    early = NOW + timedelta(seconds=2)
    decision = next_run_decision(
        job(min_interval_ms=30_000), NOW, consecutive_failures=0, ai_next_run_at=early
    )
    assert decision.source is ScheduleSource.CLAMPED_MIN
    assert (decision.at, decision.proposed_at) == (NOW + timedelta(seconds=30), early)


def test_clamped_max_keeps_proposal() -> None:
    late = NOW + timedelta(days=30)
    decision = next_run_decision(
        job(max_interval_ms=3_600_000), NOW, consecutive_failures=0, ai_next_run_at=late
    )
    assert decision.source is ScheduleSource.CLAMPED_MAX
    assert (decision.at, decision.proposed_at) == (NOW + timedelta(hours=1), late)


def test_backoff_is_clamped_to_max() -> None:
    the_job = job(interval_ms=3_600_000, max_interval_ms=4 * 3_600_000)
    decision = next_run_decision(the_job, NOW, consecutive_failures=5)
    assert decision.source is ScheduleSource.CLAMPED_MAX
    assert decision.at == NOW + timedelta(hours=4)
    assert decision.proposed_at == NOW + timedelta(hours=32)


def test_retry_soon_pins_to_min_interval() -> None:
    later = NOW + timedelta(hours=2)
    decision = next_run_decision(
        job(min_interval_ms=15_000),
        NOW,
        consecutive_failures=1,
        ai_next_run_at=later,
        retry_soon=True,
    )
    assert (decision.at, decision.source, decision.proposed_at) == (
        NOW + timedelta(seconds=15),
        ScheduleSource.CLAMPED_MIN,
        later,
    )


def test_pause_wins_over_retry_soon_and_ai() -> None:
    until = NOW + timedelta(days=2)
    decision = next_run_decision(
        job(paused_until=until, max_interval_ms=3_600_000),
        NOW,
        consecutive_failures=0,
        ai_next_run_at=NOW + timedelta(minutes=1),
        retry_soon=True,
    )
    assert (decision.at, decision.source) == (until, ScheduleSource.PAUSED)


def test_run_that_ended_late_never_schedules_into_past() -> None:
    planned = NOW - timedelta(minutes=10)  # the AI planned before a long run
    decision = next_run_decision(
        job(interval_ms=60_000, min_interval_ms=1_000),
        NOW,
        consecutive_failures=0,
        ai_next_run_at=planned,
        preliminary_next_run_at=planned,
    )
    assert decision.at > NOW


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run_decision(job(), datetime(2026, 1, 1), consecutive_failures=0)


# -- cron & DST --------------------------------------------------------------------------------


def _simulate_daily(start: datetime, end: datetime) -> Counter[date]:
    """Run loop: each run ends at its fire time; count fires per Berlin local day."""
    the_job = job(cron="0 2 * * *", timezone="Europe/Berlin", min_interval_ms=1_000)
    now, fires = start, Counter[date]()
    while True:
        decision = next_run_decision(the_job, now, consecutive_failures=0)
        assert decision.source is ScheduleSource.BASELINE_CRON
        assert decision.at > now
        if decision.at >= end:
            return fires
        fires[decision.at.astimezone(BERLIN).date()] += 1
        now = decision.at


@pytest.mark.parametrize(
    ("start", "end"),
    [((2026, 3, 20), (2026, 4, 5)), ((2026, 10, 15), (2026, 11, 5))],
    ids=["spring-forward", "fall-back"],
)
def test_dst_daily_job_fires_once_per_local_day(
    start: tuple[int, int, int], end: tuple[int, int, int]
) -> None:
    begin = datetime(*start, tzinfo=BERLIN)
    finish = datetime(*end, tzinfo=BERLIN)
    fires = _simulate_daily(begin.astimezone(UTC), finish.astimezone(UTC))
    days = [begin.date() + timedelta(days=n) for n in range((finish - begin).days)]
    assert fires == Counter(dict.fromkeys(days, 1))


def test_dst_spring_forward_fires_at_0300_local() -> None:
    fire = next_cron_fire("0 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert fire.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)
    assert fire == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_dst_fall_back_fires_at_first_0200_only() -> None:
    first = next_cron_fire("0 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # 02:00 CEST
    # Starting inside the repeated hour (02:10 CET, second pass) skips to the next day.
    second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert next_cron_fire("0 2 * * *", "Europe/Berlin", first) == datetime(
        2026, 10, 26, 1, 0, tzinfo=UTC
    )
    assert next_cron_fire("0 2 * * *", "Europe/Berlin", second_pass) == datetime(
        2026, 10, 26, 1, 0, tzinfo=UTC
    )


def test_dst_hourly_wildcard_follows_real_time_through_fall_back() -> None:
    now, fires = datetime(2026, 10, 24, 23, 0, tzinfo=UTC), []
    while now < datetime(2026, 10, 25, 3, 0, tzinfo=UTC):
        now = next_cron_fire("*/30 * * * *", "Europe/Berlin", now)
        fires.append(now)
    gaps = {b - a for a, b in itertools.pairwise(fires)}
    assert gaps == {timedelta(minutes=30)}  # no hour-long hole, no duplicate
    assert len(fires) == 8  # 23:30 … 03:00 UTC


def test_dst_gap_collapses_to_transition_for_frequent_cron() -> None:
    now, fires = datetime(2026, 3, 29, 0, 0, tzinfo=UTC), []
    while now < datetime(2026, 3, 29, 2, 0, tzinfo=UTC):
        now = next_cron_fire("*/20 * * * *", "Europe/Berlin", now)
        fires.append(now.astimezone(BERLIN).strftime("%H:%M"))
    assert fires == ["01:20", "01:40", "03:00", "03:20", "03:40", "04:00"]


def test_six_field_cron_has_seconds_first() -> None:
    fire = next_cron_fire("15 30 9 * * *", "UTC", NOW)
    assert fire == datetime(2026, 5, 5, 9, 30, 15, tzinfo=UTC)


def test_alias_is_accepted() -> None:
    assert next_cron_fire("@daily", "UTC", NOW) == datetime(2026, 5, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "tz", "fragment"),
    [
        ("* * * *", "UTC", "5 fields"),
        ("* * * * * * *", "UTC", "5 fields"),
        ("61 * * * *", "UTC", "invalid cron"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 2 * * *", "Mars/Olympus", "unknown timezone"),
    ],
)
def test_validate_cron_reports_problems(expr: str, tz: str, fragment: str) -> None:
    errors = validate_cron(expr, tz)
    assert errors
    assert any(fragment in e for e in errors)


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 0 2 * * 1-5", "@hourly", " 0  2 * * * "])
def test_validate_cron_accepts_good_expressions(expr: str) -> None:
    assert validate_cron(expr, "Europe/Berlin") == []


_ANCHORS = [  # 2026 DST transitions (UTC, approximate) of the zones below
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Berlin spring forward
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Berlin fall back
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Lord Howe (30-minute shift)
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    datetime(2026, 4, 5, 3, tzinfo=UTC),  # Santiago (transition at local midnight)
    datetime(2026, 9, 6, 4, tzinfo=UTC),
]
transition_times = st.builds(
    lambda anchor, seconds: anchor + timedelta(seconds=seconds),
    st.sampled_from(_ANCHORS),
    st.integers(-36 * 3600, 36 * 3600),
)
cron_exprs = st.sampled_from(
    ["0 2 * * *", "30 2 * * *", "*/20 * * * *", "15 1-3 * * *", "0 * * * *"]
)
dst_zones = st.sampled_from(
    ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
)


@given(cron_exprs, dst_zones, transition_times, st.integers(0, 3 * 86_400))
def test_cron_fire_is_strictly_later_and_monotone(
    expr: str, zone: str, after: datetime, delta_s: int
) -> None:
    first = next_cron_fire(expr, zone, after)
    later = next_cron_fire(expr, zone, after + timedelta(seconds=delta_s))
    assert first > after
    assert later >= first


@given(cron_exprs, dst_zones, transition_times, st.floats(0.0, 1.0))
def test_cron_never_skips_a_fire(expr: str, zone: str, after: datetime, frac: float) -> None:
    """Asking from any instant before the next fire gives that same fire."""
    fire = next_cron_fire(expr, zone, after)
    between = after + (fire - after) * frac
    if between < fire:
        assert next_cron_fire(expr, zone, between) == fire


@given(decisions())
def test_proposals_follow_the_precedence_ai_then_reused_then_preliminary(
    case: tuple[JobSnapshot, datetime, dict[str, object]],
) -> None:
    the_job, now, kwargs = case
    the_job = replace(the_job, min_interval_ms=0, max_interval_ms=366 * 86_400_000)
    kwargs["retry_soon"] = False
    decision = next_run_decision(the_job, now, **kwargs)  # type: ignore[arg-type]
    future = {
        source: kwargs[name]
        for source, name in (
            (ScheduleSource.AI, "ai_next_run_at"),
            (ScheduleSource.AI_REUSED, "reused_next_run_at"),
            (ScheduleSource.AI_PRELIMINARY, "preliminary_next_run_at"),
        )
        if isinstance(kwargs[name], datetime) and kwargs[name] > now  # type: ignore[operator]
    }
    if future:
        first = next(iter(future))
        assert (decision.source, decision.at) == (first, future[first])


def test_reused_cadence_is_clamped_like_any_proposal() -> None:
    early = NOW + timedelta(seconds=5)
    decision = next_run_decision(
        job(min_interval_ms=30_000), NOW, consecutive_failures=0, reused_next_run_at=early
    )
    assert (decision.source, decision.proposed_at) == (ScheduleSource.CLAMPED_MIN, early)
    later = NOW + timedelta(minutes=2)
    decision = next_run_decision(job(), NOW, consecutive_failures=0, reused_next_run_at=later)
    assert (decision.source, decision.at) == (ScheduleSource.AI_REUSED, later)


# -- hints (a user's steer without the model) -------------------------------------------------


def _hinted(**hint: object) -> JobSnapshot:
    fields: dict[str, object] = {"expires_at": NOW + timedelta(hours=1), **hint}
    return job(hint=Hint(**fields), min_interval_ms=10_000, max_interval_ms=3_600_000)  # type: ignore[arg-type]


def test_a_live_interval_hint_wins_over_the_ai_and_the_reused_decision() -> None:
    decided = next_run_decision(
        _hinted(interval_ms=300_000),
        NOW,
        consecutive_failures=0,
        ai_next_run_at=NOW + timedelta(minutes=1),
        reused_next_run_at=NOW + timedelta(minutes=2),
    )
    assert (decided.at, decided.source) == (NOW + timedelta(minutes=5), ScheduleSource.HINT)


def test_a_one_shot_hint_proposes_its_time_until_it_has_passed() -> None:
    at = NOW + timedelta(minutes=7)
    ai = NOW + timedelta(minutes=1)
    first = next_run_decision(_hinted(next_run_at=at), NOW, consecutive_failures=0,
                              ai_next_run_at=ai)  # fmt: skip
    assert (first.at, first.source) == (at, ScheduleSource.HINT)
    later = NOW + timedelta(minutes=8)
    after = next_run_decision(_hinted(next_run_at=at), later, consecutive_failures=0,
                              ai_next_run_at=later + timedelta(minutes=1))  # fmt: skip
    assert after.source is ScheduleSource.AI


def test_an_expired_hint_is_ignored() -> None:
    hinted = _hinted(interval_ms=300_000, expires_at=NOW)
    decided = next_run_decision(
        hinted, NOW, consecutive_failures=0, ai_next_run_at=NOW + timedelta(minutes=1)
    )
    assert decided.source is ScheduleSource.AI
    assert live_hint(hinted.hint, NOW) is None
    assert hint_next_run_at(hinted.hint, NOW) is None


def test_hints_are_clamped_and_a_pause_wins() -> None:
    too_long = next_run_decision(_hinted(interval_ms=7_200_000), NOW, consecutive_failures=0)
    assert too_long.source is ScheduleSource.CLAMPED_MAX
    assert too_long.proposed_at == NOW + timedelta(hours=2)
    too_short = next_run_decision(_hinted(interval_ms=1_000), NOW, consecutive_failures=0)
    assert too_short.source is ScheduleSource.CLAMPED_MIN
    paused = replace(_hinted(interval_ms=300_000), paused_until=NOW + timedelta(days=1))
    decided = next_run_decision(paused, NOW, consecutive_failures=0)
    assert (decided.at, decided.source) == (NOW + timedelta(days=1), ScheduleSource.PAUSED)


@given(
    interval_s=st.integers(min_value=1, max_value=30 * 86_400),
    ai_s=st.integers(min_value=1, max_value=30 * 86_400),
    failures=st.integers(min_value=0, max_value=10),
)
def test_a_live_hint_always_decides_inside_the_bounds(
    interval_s: int, ai_s: int, failures: int
) -> None:
    hinted = _hinted(interval_ms=interval_s * 1000)
    decided = next_run_decision(
        hinted, NOW, consecutive_failures=failures, ai_next_run_at=NOW + timedelta(seconds=ai_s)
    )
    assert decided.source in (
        ScheduleSource.HINT,
        ScheduleSource.CLAMPED_MIN,
        ScheduleSource.CLAMPED_MAX,
    )
    assert decided.proposed_at == NOW + timedelta(seconds=interval_s)
    assert NOW + timedelta(seconds=10) <= decided.at <= NOW + timedelta(hours=1)
