"""The `cronicorn-engine status` report: pure builders from plain rows, a Rich view, JSON.

No database here: the caller fetches worker heartbeat rows and job rows (or counts) from the
store or the API and hands them over as dicts, dataclasses or ORM objects. That keeps the
report identical whether it is read locally or from another machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, computed_field
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

ALIVE_FACTOR = 3
"""A worker is alive while its last heartbeat is younger than this many intervals."""

STAT_COLUMNS = (
    ("cycles", "total_cycles"),
    ("processed", "total_jobs_processed"),
    ("ok", "successful_jobs"),
    ("failed", "failed_jobs"),
    ("ai calls", "ai_agent_calls"),
)


class WorkerStatus(BaseModel):
    id: str
    host: str = ""
    pid: int = 0
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_cycle_at: datetime | None = None
    stopped_at: datetime | None = None
    alive: bool
    stats: dict[str, Any] = Field(default_factory=dict)


class FailingJob(BaseModel):
    id: str
    name: str
    consecutive_failures: int


class TokenSpend(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorators over @property
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class JobSummary(BaseModel):
    """Job-side numbers of the report; build with `summarize_jobs` or from SQL counts."""

    jobs_due_now: int = 0
    jobs_locked: int = 0
    stale_locks: int = 0
    failing_jobs: list[FailingJob] = Field(default_factory=list)
    """All failing jobs or just the worst ones; `build_status_report` keeps the top N."""
    failing_jobs_total: int | None = None
    """How many jobs are failing in all (defaults to len(failing_jobs))."""
    token_spend: TokenSpend = Field(default_factory=TokenSpend)


class StatusReport(BaseModel):
    generated_at: datetime
    heartbeat_interval_s: float
    workers: list[WorkerStatus]
    workers_alive: int
    jobs_due_now: int
    jobs_locked: int
    stale_locks: int
    failing_jobs: list[FailingJob]
    failing_jobs_total: int
    token_spend: TokenSpend

    def to_json(self) -> str:
        """The `--json` output (stable field names, ISO UTC timestamps)."""
        return self.model_dump_json(indent=2)


def _get(row: Any, name: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def worker_alive(row: Any, now: datetime, heartbeat_interval_s: float) -> bool:
    """Alive: not stopped, and the last heartbeat is within ALIVE_FACTOR intervals."""
    if _get(row, "stopped_at") is not None:
        return False
    beat = _aware(_get(row, "last_heartbeat_at"))
    if beat is None:
        return False
    return now - beat <= timedelta(seconds=ALIVE_FACTOR * heartbeat_interval_s)


def summarize_jobs(jobs: Iterable[Any], now: datetime) -> JobSummary:
    """Counts from job rows with the store's field names (`status`, `next_run_at`,
    `paused_until`, `lease_owner`, `lease_expires_at`, `consecutive_failures`, token totals).

    Due: active, not paused, `next_run_at <= now`, lease free or expired (SPEC §3 claim rule).
    Locked: a lease that has not expired. Stale: an owner still recorded on an expired lease.
    """
    summary = JobSummary()
    spend = {field: 0 for field in TokenSpend.model_fields}
    failing: list[FailingJob] = []
    for job in jobs:
        expires = _aware(_get(job, "lease_expires_at"))
        locked = expires is not None and expires > now
        if locked:
            summary.jobs_locked += 1
        elif _get(job, "lease_owner") is not None:
            summary.stale_locks += 1
        next_run = _aware(_get(job, "next_run_at"))
        paused_until = _aware(_get(job, "paused_until"))
        if (
            str(_get(job, "status", "active")) == "active"
            and next_run is not None
            and next_run <= now
            and (paused_until is None or paused_until <= now)
            and not locked
        ):
            summary.jobs_due_now += 1
        failures = int(_get(job, "consecutive_failures", 0) or 0)
        if failures > 0:
            failing.append(
                FailingJob(
                    id=str(_get(job, "id")),
                    name=str(_get(job, "name", "")),
                    consecutive_failures=failures,
                )
            )
        for field in spend:
            spend[field] += int(_get(job, field, 0) or 0)
    summary.failing_jobs = failing
    summary.token_spend = TokenSpend(**spend)
    return summary


def build_status_report(
    workers: Iterable[Any],
    jobs: JobSummary,
    *,
    now: datetime,
    heartbeat_interval_s: float,
    top_failing: int = 10,
    include_dead: bool = False,
) -> StatusReport:
    """The report from heartbeat rows (`id`, `host`, `pid`, `started_at`,
    `last_heartbeat_at`, `last_cycle_at`, `stopped_at`, `stats`) and a job summary.

    Dead workers are left out unless `include_dead`; failing jobs are sorted worst first and
    cut to `top_failing`.
    """
    now = _aware(now) or datetime.now(UTC)
    rows = [
        WorkerStatus(
            id=str(_get(w, "id")),
            host=str(_get(w, "host", "") or ""),
            pid=int(_get(w, "pid", 0) or 0),
            started_at=_aware(_get(w, "started_at")),
            last_heartbeat_at=_aware(_get(w, "last_heartbeat_at")),
            last_cycle_at=_aware(_get(w, "last_cycle_at")),
            stopped_at=_aware(_get(w, "stopped_at")),
            alive=worker_alive(w, now, heartbeat_interval_s),
            stats=dict(_get(w, "stats", None) or {}),
        )
        for w in workers
    ]
    shown = sorted((w for w in rows if w.alive or include_dead), key=lambda w: w.id)
    failing = sorted(jobs.failing_jobs, key=lambda j: (-j.consecutive_failures, j.name, j.id))
    return StatusReport(
        generated_at=now,
        heartbeat_interval_s=heartbeat_interval_s,
        workers=shown,
        workers_alive=sum(w.alive for w in rows),
        jobs_due_now=jobs.jobs_due_now,
        jobs_locked=jobs.jobs_locked,
        stale_locks=jobs.stale_locks,
        failing_jobs=failing[: max(0, top_failing)],
        failing_jobs_total=(
            jobs.failing_jobs_total if jobs.failing_jobs_total is not None else len(failing)
        ),
        token_spend=jobs.token_spend,
    )


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def render_status(report: StatusReport) -> RenderableType:
    """A Rich view: summary line, workers table, failing jobs table."""
    spend = report.token_spend
    summary = Text.assemble(
        ("Workers alive ", "bold"),
        str(report.workers_alive),
        ("  Jobs due now ", "bold"),
        str(report.jobs_due_now),
        ("  Locked ", "bold"),
        str(report.jobs_locked),
        ("  Stale locks ", "bold"),
        (str(report.stale_locks), "red" if report.stale_locks else ""),
        ("  Failing ", "bold"),
        (str(report.failing_jobs_total), "red" if report.failing_jobs_total else ""),
        ("\nTokens ", "bold"),
        f"{spend.total_tokens} (in {spend.input_tokens}, out {spend.output_tokens}, "
        f"reasoning {spend.reasoning_tokens}, cached {spend.cached_input_tokens})",
    )
    workers = Table(title="Workers", title_justify="left")
    for column in ("id", "host", "pid", "started", "heartbeat", "alive"):
        workers.add_column(column)
    for label, _ in STAT_COLUMNS:
        workers.add_column(label, justify="right")
    for w in report.workers:
        workers.add_row(
            w.id,
            w.host,
            str(w.pid),
            _age(report.generated_at, w.started_at),
            _age(report.generated_at, w.last_heartbeat_at),
            Text("yes", "green") if w.alive else Text("no", "red"),
            *(str(w.stats.get(key, "-")) for _, key in STAT_COLUMNS),
        )
    parts: list[RenderableType] = [summary, workers]
    if report.failing_jobs:
        failing = Table(title="Failing jobs", title_justify="left")
        failing.add_column("job")
        failing.add_column("id")
        failing.add_column("consecutive failures", justify="right")
        for job in report.failing_jobs:
            failing.add_row(job.name, job.id, str(job.consecutive_failures))
        parts.append(failing)
    return Group(*parts)
