"""View models: everything a page shows, gathered from the services in one place per page.

Sections the scheduler does not record yet (stored AI sessions, hints, cost) are added here as
new fields when their services exist; templates render a section only when its field is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cronicorn.service import Principal, Services
from cronicorn.service.dashboard import RunCounts
from cronicorn.service.schemas import (
    EndpointOut,
    JobOut,
    MessageOut,
    RunDetail,
    RunOut,
)
from cronicorn.web.timeline import Timeline, build_timeline, group_of

JOBS_SHOWN = 200
"""Rows of the job list; search and the status filter reach the others."""
RUNS_PER_PAGE = 25
TIMELINE_RUNS = 200
MESSAGES_SHOWN = 20
DECISIONS_SHOWN = 6


@dataclass(frozen=True, slots=True)
class Decision:
    """A scheduling decision recorded on a run: when, what, why, how sure."""

    run_id: str
    source: str
    group: str
    next_run_at: str
    reasoning: str
    confidence: float | None
    repeats: int = 1
    """Consecutive runs that made this same decision (shown once)."""


@dataclass(frozen=True, slots=True)
class JobPage:
    job: JobOut
    endpoints: list[EndpointOut]
    runs: list[RunOut]
    older: str | None
    """`before` cursor for the next page of runs (None on the last page)."""
    paged: bool
    """True when showing an older page (live refresh is off there)."""
    timeline: Timeline | None
    decisions: list[Decision]
    messages: list[MessageOut]
    day: RunCounts
    source_group: str


@dataclass(frozen=True, slots=True)
class RunPage:
    run: RunDetail
    job: JobOut
    endpoint_names: dict[str, str] = field(default_factory=dict)


def decisions_of(runs: list[RunOut]) -> list[Decision]:
    """Newest first; a run repeating the previous decision (same source and reasoning)
    only counts towards that one."""
    out: list[Decision] = []
    for run in runs:
        schedule = run.schedule
        if schedule is None or not schedule.source:
            continue
        reasoning = schedule.reasoning or ""
        if out and (out[-1].source, out[-1].reasoning) == (schedule.source, reasoning):
            out[-1] = replace(out[-1], repeats=out[-1].repeats + 1)
            continue
        out.append(
            Decision(
                run_id=run.id,
                source=schedule.source,
                group=group_of(schedule.source),
                next_run_at=schedule.next_run_at.isoformat() if schedule.next_run_at else "",
                reasoning=reasoning,
                confidence=schedule.confidence,
            )
        )
    return out[:DECISIONS_SHOWN]


async def job_page(
    services: Services, principal: Principal, job_id: str, before: str | None = None
) -> JobPage:
    job = await services.jobs.get(principal, job_id)
    runs = await services.history.runs(principal, job_id, limit=RUNS_PER_PAGE + 1, before=before)
    older = runs[RUNS_PER_PAGE - 1].id if len(runs) > RUNS_PER_PAGE else None
    runs = runs[:RUNS_PER_PAGE]
    source = job.last_schedule.source if job.last_schedule else None
    return JobPage(
        job=job,
        endpoints=await services.endpoints.list_for_job(principal, job_id),
        runs=runs,
        older=older,
        paged=before is not None,
        timeline=build_timeline(
            await services.dashboard.timeline(principal, job_id, TIMELINE_RUNS)
        ),
        decisions=decisions_of(runs),
        messages=await services.history.messages(principal, job_id, limit=MESSAGES_SHOWN),
        day=await services.dashboard.day_counts(principal, job_id),
        source_group=group_of(source),
    )


async def run_page(services: Services, principal: Principal, run_id: str) -> RunPage:
    run = await services.history.run(principal, run_id)
    job = await services.jobs.get(principal, run.job_id)
    endpoints = await services.endpoints.list_for_job(principal, run.job_id)
    return RunPage(run=run, job=job, endpoint_names={e.id: e.name for e in endpoints})
