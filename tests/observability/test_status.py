"""The status report: liveness, job counts, failing jobs, token spend, JSON and Rich views."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from cronicorn.observability.status import (
    FailingJob,
    JobSummary,
    StatusReport,
    build_status_report,
    render_status,
    summarize_jobs,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
INTERVAL_S = 10.0


@dataclass
class WorkerRow:
    """Shaped like the store's `workers` row (attributes, not a dict)."""

    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    last_cycle_at: datetime | None = None
    stopped_at: datetime | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def worker(wid: str, beat_age_s: float, **kw: Any) -> WorkerRow:
    return WorkerRow(
        id=wid,
        host="host-a",
        pid=100,
        started_at=NOW - timedelta(hours=1),
        last_heartbeat_at=NOW - timedelta(seconds=beat_age_s),
        **kw,
    )


def job(jid: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": jid,
        "name": f"job {jid}",
        "status": "active",
        "next_run_at": NOW + timedelta(hours=1),
        "paused_until": None,
        "lease_owner": None,
        "lease_expires_at": None,
        "consecutive_failures": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cached_input_tokens": 0,
    }
    row.update(kw)
    return row


PAST = NOW - timedelta(minutes=5)
JOBS = [
    job("due", next_run_at=PAST, input_tokens=100, output_tokens=10),
    job("due-naive", next_run_at=PAST.replace(tzinfo=None)),  # SQLite-style naive UTC
    job("future"),
    job("paused", status="paused", next_run_at=PAST),
    job("snoozed", next_run_at=PAST, paused_until=NOW + timedelta(minutes=1)),
    job("running", next_run_at=PAST, lease_owner="w1", lease_expires_at=NOW + timedelta(minutes=1)),
    job(
        "stale", next_run_at=PAST, lease_owner="w-dead", lease_expires_at=NOW - timedelta(minutes=1)
    ),
    job("f3", consecutive_failures=3, output_tokens=5, reasoning_tokens=7, cached_input_tokens=2),
    job("f1", consecutive_failures=1),
    job("f9", consecutive_failures=9),
]


def test_summarize_jobs_counts() -> None:
    summary = summarize_jobs(JOBS, NOW)
    # due, due-naive and the stale one (an expired lease is claimable).
    assert summary.jobs_due_now == 3
    assert summary.jobs_locked == 1
    assert summary.stale_locks == 1
    assert {j.id for j in summary.failing_jobs} == {"f1", "f3", "f9"}
    spend = summary.token_spend
    assert (spend.input_tokens, spend.output_tokens, spend.reasoning_tokens) == (100, 15, 7)
    assert spend.cached_input_tokens == 2
    assert spend.total_tokens == 115


def test_report_lists_live_workers_only_and_top_failing() -> None:
    workers = [
        worker("w1", 5, stats={"total_cycles": 42, "successful_jobs": 40, "failed_jobs": 2}),
        {
            "id": "w2",
            "host": "host-b",
            "pid": 7,
            "started_at": NOW,
            "last_heartbeat_at": NOW,
            "stats": {"total_cycles": 1},
        },
        worker("w-old", 31),  # beyond 3 x 10 s
        worker("w-stopped", 1, stopped_at=NOW),
    ]
    report = build_status_report(
        workers, summarize_jobs(JOBS, NOW), now=NOW, heartbeat_interval_s=INTERVAL_S, top_failing=2
    )
    assert [w.id for w in report.workers] == ["w1", "w2"]
    assert report.workers_alive == 2
    assert report.workers[0].stats["total_cycles"] == 42
    assert [j.id for j in report.failing_jobs] == ["f9", "f3"]
    assert report.failing_jobs_total == 3
    assert report.jobs_due_now == 3

    everyone = build_status_report(
        workers, JobSummary(), now=NOW, heartbeat_interval_s=INTERVAL_S, include_dead=True
    )
    assert {w.id: w.alive for w in everyone.workers} == {
        "w-old": False,
        "w-stopped": False,
        "w1": True,
        "w2": True,
    }


def test_worker_disappears_once_its_heartbeat_expires() -> None:
    row = worker("w1", 0)
    for age, shown in ((29, True), (30, True), (31, False)):
        later = NOW + timedelta(seconds=age)
        report = build_status_report(
            [row], JobSummary(), now=later, heartbeat_interval_s=INTERVAL_S
        )
        assert bool(report.workers) is shown, age


def test_counts_can_come_from_sql_instead_of_rows() -> None:
    summary = JobSummary(
        jobs_due_now=12,
        jobs_locked=4,
        failing_jobs=[FailingJob(id="a", name="a", consecutive_failures=2)],
        failing_jobs_total=40,
    )
    report = build_status_report([], summary, now=NOW, heartbeat_interval_s=INTERVAL_S)
    assert (report.jobs_due_now, report.jobs_locked, report.failing_jobs_total) == (12, 4, 40)


def test_json_round_trip() -> None:
    report = build_status_report(
        [worker("w1", 1, stats={"total_cycles": 3})],
        summarize_jobs(JOBS, NOW),
        now=NOW,
        heartbeat_interval_s=INTERVAL_S,
    )
    data = json.loads(report.to_json())
    assert data["workers"][0]["id"] == "w1"
    assert data["workers"][0]["last_heartbeat_at"] == "2025-01-01T11:59:59Z"
    assert data["workers"][0]["alive"] is True
    assert data["token_spend"]["total_tokens"] == 115
    assert data["stale_locks"] == 1
    assert StatusReport.model_validate_json(report.to_json()).workers[0].id == "w1"


def test_rich_render() -> None:
    report = build_status_report(
        [worker("worker-1", 4, stats={"total_cycles": 42, "total_jobs_processed": 17})],
        summarize_jobs(JOBS, NOW),
        now=NOW,
        heartbeat_interval_s=INTERVAL_S,
    )
    console = Console(record=True, width=160, color_system=None)
    console.print(render_status(report))
    text = console.export_text()
    assert "worker-1" in text
    assert "4s ago" in text
    assert "42" in text
    assert "17" in text
    assert "Jobs due now 3" in text
    assert "Stale locks 1" in text
    assert "job f9" in text
    assert "Tokens 115" in text


def test_rich_render_without_workers_or_failures() -> None:
    report = build_status_report([], JobSummary(), now=NOW, heartbeat_interval_s=INTERVAL_S)
    console = Console(record=True, width=120, color_system=None)
    console.print(render_status(report))
    text = console.export_text()
    assert "Workers alive 0" in text
    assert "Failing jobs" not in text
