"""Pure parts of the dashboard: the timeline geometry, form parsing, decisions, formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cronicorn.service.dashboard import TimelineRun
from cronicorn.service.schemas import RunOut, RunSchedule, RunTokens
from cronicorn.web import forms
from cronicorn.web.format import duration, pretty_json, relative
from cronicorn.web.timeline import PLOT_BOTTOM, TOP, build_timeline, group_of
from cronicorn.web.views import decisions_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(
    i: int, interval_s: float | None, source: str | None, status: str = "completed"
) -> TimelineRun:
    started = T0 + timedelta(minutes=i)
    finished = started + timedelta(seconds=1)
    next_run = finished + timedelta(seconds=interval_s) if interval_s is not None else None
    return TimelineRun(f"r{i}", started, finished, status, source, next_run)


def test_the_timeline_places_runs_by_time_and_chosen_interval() -> None:
    timeline = build_timeline(
        [
            run(0, 60, "baseline_interval"),
            run(1, 3600, "ai"),
            run(2, 30, "backoff", "failed"),
            run(3, None, None, "running"),
        ]
    )
    assert timeline is not None
    xs = [p.x for p in timeline.points]
    assert xs == sorted(xs)
    assert xs[0] == timeline.left
    assert xs[-1] == timeline.right_edge
    ys = {p.run_id: p.y for p in timeline.points}
    low, mid, high = ys["r2"], ys["r0"], ys["r1"]
    assert low is not None
    assert mid is not None
    assert high is not None
    assert high < mid < low  # longer interval = higher = smaller y
    assert all(TOP <= y <= PLOT_BOTTOM for y in (low, mid, high))
    assert ys["r3"] is None
    assert [p.group for p in timeline.points] == ["baseline", "ai", "backoff", "none"]
    assert [p.outcome for p in timeline.points][2] == "failed"
    assert {t.label for t in timeline.y_ticks} >= {"1 min", "10 min", "1 h"}
    assert build_timeline([]) is None


@pytest.mark.parametrize(
    ("source", "group"),
    [
        ("ai", "ai"),
        ("ai_preliminary", "ai"),
        ("ai_reused", "ai_reused"),
        ("hint", "hint"),
        ("baseline_cron", "baseline"),
        ("default", "baseline"),
        ("clamped_max", "clamped"),
        ("paused", "paused"),
        ("something-new", "none"),
        (None, "none"),
    ],
)
def test_sources_map_to_colour_groups(source: str | None, group: str) -> None:
    assert group_of(source) == group


def test_job_form_errors_carry_the_api_messages() -> None:
    with pytest.raises(forms.FormInvalid) as caught:
        forms.job_create({"name": "", "definition": "x", "interval_ms": "soon"})
    assert set(caught.value.errors) == {"name", "interval_ms"}
    assert caught.value.errors["interval_ms"] == ["interval_ms: Input should be a valid integer"]
    job = forms.job_create({"name": "n", "definition": "d", "interval_ms": "60000", "cron": ""})
    assert job.interval_ms == 60_000
    assert job.cron is None


def test_job_update_clears_blank_nullable_fields_and_keeps_the_rest() -> None:
    update = forms.job_update(
        {"name": "n", "definition": "d", "cron": "", "interval_ms": "", "min_interval_ms": ""}
    )
    assert update.cron is None
    assert update.interval_ms is None
    assert "cron" in update.model_fields_set
    assert "min_interval_ms" not in update.model_fields_set


def test_endpoint_forms_parse_headers_body_and_token() -> None:
    created = forms.endpoint_create(
        {
            "name": "e",
            "url": "https://api.example.com/x",
            "headers": "X-A: 1\n\nX-B: two: parts",
            "body": '{"a": [1, 2]}',
            "bearer_token": "t",
            "fire_and_forget": "1",
        }
    )
    assert created.headers == {"X-A": "1", "X-B": "two: parts"}
    assert created.body == {"a": [1, 2]}
    assert created.bearer_token == "t"
    assert created.fire_and_forget is True
    kept = forms.endpoint_update({"name": "e", "url": "https://api.example.com/x"})
    assert "bearer_token" not in kept.model_fields_set
    cleared = forms.endpoint_update(
        {"name": "e", "url": "https://a.example/", "clear_bearer_token": "1"}
    )
    assert "bearer_token" in cleared.model_fields_set
    assert cleared.bearer_token is None
    with pytest.raises(forms.FormInvalid) as caught:
        forms.endpoint_create({"name": "e", "url": "https://a.example/", "headers": "no colon"})
    assert caught.value.errors == {"headers": ["headers: line 1 is not `Name: value`"]}
    with pytest.raises(forms.FormInvalid) as caught:
        forms.endpoint_create({"name": "e", "url": "https://a.example/", "body": "{"})
    assert list(caught.value.errors) == ["body"]


def _run_out(i: int, source: str, reasoning: str) -> RunOut:
    return RunOut(
        id=f"r{i}", job_id="j", worker_id="w", status="completed", started_at=T0,
        finished_at=T0, duration_ms=1.0, plan=None, plan_source=None, strategy=None,
        success_count=1, failure_count=0, skipped_count=0, aborted_count=0,
        escalation_level="none",
        schedule=RunSchedule(source=source, reasoning=reasoning, confidence=0.5),
        tokens=RunTokens(input=0, output=0, reasoning=0, cached=0), ai_calls=0, error=None,
    )  # fmt: skip


def test_repeated_decisions_are_shown_once_with_a_count() -> None:
    runs = [
        _run_out(0, "ai", "steady"),
        _run_out(1, "ai", "steady"),
        _run_out(2, "backoff", "failing"),
        _run_out(3, "ai", "steady"),
    ]
    decisions = decisions_of(runs)
    assert [(d.source, d.repeats) for d in decisions] == [("ai", 2), ("backoff", 1), ("ai", 1)]
    assert decisions[0].run_id == "r0"


def test_formats() -> None:
    assert duration(850) == "850 ms"
    assert duration(12_500) == "12.5 s"
    assert duration(60_000) == "1 min"
    assert duration(3_600_000 + 5 * 60_000) == "1 h 5 min"
    assert duration(3 * 86_400_000) == "3 d"
    assert relative(T0 + timedelta(minutes=3), T0) == "in 3 min"
    assert relative(T0 - timedelta(seconds=12), T0) == "12 s ago"
    capped = pretty_json("x" * 5000, cap=100)
    assert capped.startswith("x" * 100)
    assert "4900 more characters" in capped
