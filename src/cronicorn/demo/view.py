"""What the demo shows: a tracker of the demo jobs' runs (read back from the API) and its
Rich views — the live table, plain progress lines for non-terminals, and the final table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.table import Table
from rich.text import Text

from cronicorn.service.schemas import EndpointResultOut, JobOut, RunDetail, RunOut

REASONING_CHARS = 70
FINISHED = ("completed", "failed", "aborted")


@dataclass
class JobTrack:
    """One demo job: its latest state, endpoint names and finished runs (oldest first)."""

    job: JobOut
    endpoint_names: dict[str, str]
    runs: list[RunDetail] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def new_finished(self, runs: list[RunOut]) -> list[RunOut]:
        """Finished runs not seen yet, oldest first."""
        fresh = [r for r in runs if r.status in FINISHED and r.id not in self.seen]
        return sorted(fresh, key=lambda r: r.started_at)

    def add(self, run: RunDetail) -> None:
        self.seen.add(run.id)
        self.runs.append(run)
        self.runs.sort(key=lambda r: r.started_at)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def offset(start: datetime, value: datetime | None) -> str:
    """`value` as seconds after the demo started, e.g. `+12.3s`."""
    if value is None:
        return "-"
    return f"+{max(0.0, (_aware(value) - start).total_seconds()):.1f}s"


def counts(results: list[EndpointResultOut]) -> str:
    """`2✓ 1✗` (plus skipped/aborted when there are any)."""
    tally = {status: 0 for status in ("success", "failed", "skipped", "aborted")}
    for result in results:
        tally[result.status] = tally.get(result.status, 0) + 1
    parts = [f"{tally['success']}✓", f"{tally['failed']}✗"]
    if tally["skipped"]:
        parts.append(f"{tally['skipped']} skipped")
    if tally["aborted"]:
        parts.append(f"{tally['aborted']} aborted")
    return " ".join(parts)


def called(track: JobTrack, run: RunDetail) -> str:
    names = [
        track.endpoint_names.get(r.endpoint_id, r.endpoint_id[:8])
        for r in run.results
        if r.status in ("success", "failed")
    ]
    return ", ".join(names) or "-"


def short(text: str | None, limit: int = REASONING_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outcome(run: RunDetail) -> Text:
    style = {"completed": "green", "failed": "red"}.get(run.status, "yellow")
    return Text(f"{run.status} {counts(run.results)}", style=style)


def next_in(job: JobOut, now: datetime) -> str:
    if job.next_run_at is None:
        return "-"
    if job.locked:
        return "running"
    seconds = (_aware(job.next_run_at) - now).total_seconds()
    return "due" if seconds <= 0 else f"{seconds:.1f}s"


def live_table(tracks: list[JobTrack], now: datetime, elapsed_s: float, total_s: float) -> Table:
    table = Table(
        title=f"Cronicorn demo — {elapsed_s:.0f}s / {total_s:.0f}s (Ctrl-C ends early)",
        title_justify="left",
    )
    for column in ("job", "runs", "last outcome", "next run in", "source"):
        table.add_column(column)
    for track in tracks:
        last = track.runs[-1] if track.runs else None
        schedule = track.job.last_schedule
        table.add_row(
            track.job.name,
            str(len(track.runs)),
            outcome(last) if last else Text("-"),
            next_in(track.job, now),
            schedule.source if schedule and schedule.source else "-",
        )
    return table


def progress_line(start: datetime, track: JobTrack, run: RunDetail) -> str:
    """One plain line per finished run, for output that is not a terminal."""
    schedule = run.schedule
    decided = ""
    if schedule is not None and schedule.next_run_at is not None:
        delay = (
            _aware(schedule.next_run_at) - _aware(run.finished_at or run.started_at)
        ).total_seconds()
        decided = f"next in {delay:.1f}s ({schedule.source})"
    return (
        f"[{offset(start, run.started_at):>7}] {track.job.name}: run {len(track.runs)} "
        f"{run.status} {counts(run.results)} [{run.strategy or '-'}] {decided}"
    )


RULES_REASONS = {
    "baseline_interval": "rules: the job's interval",
    "baseline_cron": "rules: the job's cron schedule",
    "backoff": "rules: interval x2 per consecutive failure",
    "default": "rules: default interval (no baseline)",
}
"""Plain words for the rules planner's decisions (its own reasoning text is generic)."""


def reasoning(run: RunDetail) -> str:
    schedule = run.schedule
    if schedule is None:
        return short(run.error)
    if run.plan_source == "rules" and schedule.source in RULES_REASONS:
        return RULES_REASONS[schedule.source]
    return short(schedule.reasoning)


def runs_table(start: datetime, tracks: list[JobTrack], *, wide: bool = True) -> Table:
    """Every finished run, oldest first; `wide=False` leaves out strategy and reasoning."""
    table = Table(title="Runs", title_justify="left")
    columns = ["job", "started", "endpoints called", "results", "next run", "source"]
    if wide:
        columns[3:3] = ["strategy"]
        columns.append("reasoning")
    for column in columns:
        table.add_column(column, no_wrap=column in ("started", "results", "next run", "source"))
    rows = [(run.started_at, track, run) for track in tracks for run in track.runs]
    for _, track, run in sorted(rows, key=lambda row: _aware(row[0])):
        schedule = run.schedule
        cells: list[str | Text] = [
            track.job.name,
            offset(start, run.started_at),
            called(track, run),
            outcome(run),
            offset(start, schedule.next_run_at) if schedule else "-",
            (schedule.source if schedule else None) or "-",
        ]
        if wide:
            cells[3:3] = [run.strategy or "-"]
            cells.append(reasoning(run))
        table.add_row(*cells)
    return table
