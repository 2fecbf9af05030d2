"""Retention: remove old history in small batches so storage stays bounded.

What goes (see docs/operations.md):

- runs (with their endpoint results) that finished longer ago than the run retention, or that
  are beyond the newest `max_runs_per_job` of their job; a run still `running` is never removed;
- messages older than their job's run retention (they describe the runs they came from);
- job errors older than the error retention, and alert incidents resolved longer ago than
  that (with their delivery log), and finished test deliveries of that age.

Per-job `run_retention_days` / `max_runs_per_job` override the global policy. Every batch is
its own short transaction that touches only history tables, never `jobs` rows, so the claim
path never waits on the pruner. Token and cost totals live on the job row (they are running
totals, not sums over history), so pruning never changes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.store.tables import (
    AISessionRow,
    Alert,
    AlertDelivery,
    EndpointResult,
    Job,
    JobError,
    Message,
    Run,
    utcnow,
)

__all__ = ["PruneReport", "RetentionPolicy", "prune", "run_pruner"]

log = logging.getLogger(__name__)

DEFAULT_RUN_RETENTION_DAYS = 30
DEFAULT_MAX_RUNS_PER_JOB = 10_000
DEFAULT_ERROR_RETENTION_DAYS = 30
DEFAULT_PRUNE_BATCH_SIZE = 500
DEFAULT_PRUNE_INTERVAL_MS = 300_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Global retention; 0 means "keep forever" for each limit."""

    run_retention_days: int = DEFAULT_RUN_RETENTION_DAYS
    max_runs_per_job: int = DEFAULT_MAX_RUNS_PER_JOB
    error_retention_days: int = DEFAULT_ERROR_RETENTION_DAYS
    batch_size: int = DEFAULT_PRUNE_BATCH_SIZE


@dataclass(slots=True)
class PruneReport:
    """Rows removed (or, in a dry run, that would be removed) per table."""

    runs: int = 0
    endpoint_results: int = 0
    ai_sessions: int = 0
    messages: int = 0
    job_errors: int = 0
    alerts: int = 0
    alert_deliveries: int = 0
    dry_run: bool = False
    batches: int = field(default=0)

    def as_dict(self) -> dict[str, int]:
        return {
            "runs": self.runs,
            "endpoint_results": self.endpoint_results,
            "ai_sessions": self.ai_sessions,
            "messages": self.messages,
            "job_errors": self.job_errors,
            "alerts": self.alerts,
            "alert_deliveries": self.alert_deliveries,
        }


_FINISHED = Run.status != "running"


async def prune(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    pause_s: float = 0.0,
) -> PruneReport:
    """One full pass over the history tables; returns what was (or would be) removed."""
    now = now or utcnow()
    report = PruneReport(dry_run=dry_run)
    async with engine.connect() as conn:
        overrides = (
            await conn.execute(
                sa.select(Job.id, Job.run_retention_days, Job.max_runs_per_job).where(
                    sa.or_(Job.run_retention_days.is_not(None), Job.max_runs_per_job.is_not(None))
                )
            )
        ).all()
    age_overridden = [row.id for row in overrides if row.run_retention_days is not None]
    by_age: list[sa.ColumnElement[bool]] = []
    msg_by_age: list[sa.ColumnElement[bool]] = []
    if policy.run_retention_days > 0:
        cutoff = now - timedelta(days=policy.run_retention_days)
        by_age.append(_global_age(Run.started_at, Run.job_id, cutoff, age_overridden))
        msg_by_age.append(_global_age(Message.created_at, Message.job_id, cutoff, age_overridden))
    for row in overrides:
        if row.run_retention_days:
            cutoff = now - timedelta(days=row.run_retention_days)
            by_age.append(sa.and_(Run.job_id == row.id, Run.started_at < cutoff))
            msg_by_age.append(sa.and_(Message.job_id == row.id, Message.created_at < cutoff))

    run_conditions = by_age + await _over_cap_conditions(engine, policy, overrides)
    if run_conditions:
        await _remove_runs(
            engine, sa.or_(*run_conditions), policy.batch_size, report, dry_run, pause_s
        )
    if msg_by_age:
        report.messages += await _remove_rows(
            engine,
            Message,
            sa.or_(*msg_by_age),
            policy.batch_size,
            dry_run,
            pause_s,
        )
    if policy.error_retention_days > 0:
        cutoff = now - timedelta(days=policy.error_retention_days)
        report.job_errors += await _remove_rows(
            engine,
            JobError,
            JobError.created_at < cutoff,
            policy.batch_size,
            dry_run,
            pause_s,
        )
        resolved = sa.and_(Alert.status == "resolved", Alert.resolved_at < cutoff)
        report.alert_deliveries += await _remove_rows(
            engine,
            AlertDelivery,
            sa.or_(
                AlertDelivery.alert_id.in_(sa.select(Alert.id).where(resolved)),
                sa.and_(
                    AlertDelivery.alert_id.is_(None),
                    AlertDelivery.status != "pending",
                    AlertDelivery.created_at < cutoff,
                ),
            ),
            policy.batch_size,
            dry_run,
            pause_s,
        )
        report.alerts += await _remove_rows(
            engine, Alert, resolved, policy.batch_size, dry_run, pause_s
        )
    return report


def _global_age(
    column: sa.orm.InstrumentedAttribute[datetime],
    job_column: sa.orm.InstrumentedAttribute[str],
    cutoff: datetime,
    overridden: Sequence[str],
) -> sa.ColumnElement[bool]:
    condition = column < cutoff
    if overridden:
        condition = sa.and_(condition, job_column.not_in(overridden))
    return condition


_Override = sa.Row[str, int | None, int | None]


async def _over_cap_conditions(
    engine: AsyncEngine, policy: RetentionPolicy, overrides: Sequence[_Override]
) -> list[sa.ColumnElement[bool]]:
    """For each job over its run cap: the runs older than its newest `cap` runs."""
    caps = {row.id: row.max_runs_per_job for row in overrides if row.max_runs_per_job is not None}
    conditions: list[sa.ColumnElement[bool]] = []
    async with engine.connect() as conn:
        candidates: dict[str, int] = {}
        if policy.max_runs_per_job > 0:
            over = await conn.execute(
                sa.select(Run.job_id)
                .group_by(Run.job_id)
                .having(sa.func.count() > policy.max_runs_per_job)
            )
            candidates = {job_id: policy.max_runs_per_job for (job_id,) in over}
        for job_id, cap in caps.items():
            if cap > 0:
                candidates[job_id] = cap
            else:
                candidates.pop(job_id, None)
        for job_id, cap in candidates.items():
            boundary = await conn.scalar(
                sa.select(Run.started_at)
                .where(Run.job_id == job_id)
                .order_by(Run.started_at.desc())
                .offset(cap - 1)
                .limit(1)
            )
            if boundary is not None:
                conditions.append(sa.and_(Run.job_id == job_id, Run.started_at < boundary))
    return conditions


async def _remove_runs(
    engine: AsyncEngine,
    condition: sa.ColumnElement[bool],
    batch_size: int,
    report: PruneReport,
    dry_run: bool,
    pause_s: float,
) -> None:
    """Finished runs matching `condition`, with their endpoint results, batch by batch."""
    condition = sa.and_(condition, _FINISHED)
    if dry_run:
        async with engine.connect() as conn:
            matching = sa.select(Run.id).where(condition).scalar_subquery()
            runs = sa.select(sa.func.count()).select_from(Run).where(condition)
            results = (
                sa.select(sa.func.count())
                .select_from(EndpointResult)
                .where(EndpointResult.run_id.in_(matching))
            )
            sessions = (
                sa.select(sa.func.count())
                .select_from(AISessionRow)
                .where(AISessionRow.run_id.in_(matching))
            )
            report.runs += int(await conn.scalar(runs) or 0)
            report.endpoint_results += int(await conn.scalar(results) or 0)
            report.ai_sessions += int(await conn.scalar(sessions) or 0)
        return
    while True:
        async with engine.begin() as conn:
            ids = list(
                (await conn.execute(sa.select(Run.id).where(condition).limit(batch_size))).scalars()
            )
            if not ids:
                return
            report.endpoint_results += await _delete(
                conn, sa.delete(EndpointResult).where(EndpointResult.run_id.in_(ids))
            )
            report.ai_sessions += await _delete(
                conn, sa.delete(AISessionRow).where(AISessionRow.run_id.in_(ids))
            )
            report.runs += await _delete(conn, sa.delete(Run).where(Run.id.in_(ids)))
        report.batches += 1
        await asyncio.sleep(pause_s)


async def _remove_rows(
    engine: AsyncEngine,
    model: type[Message] | type[JobError] | type[Alert] | type[AlertDelivery],
    condition: sa.ColumnElement[bool],
    batch_size: int,
    dry_run: bool,
    pause_s: float,
) -> int:
    if dry_run:
        async with engine.connect() as conn:
            count = sa.select(sa.func.count()).select_from(model).where(condition)
            return int(await conn.scalar(count) or 0)
    removed = 0
    while True:
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(sa.select(model.id).where(condition).limit(batch_size))
                ).scalars()
            )
            if not ids:
                return removed
            removed += await _delete(conn, sa.delete(model).where(model.id.in_(ids)))
        await asyncio.sleep(pause_s)


async def _delete(conn: AsyncConnection, stmt: sa.Delete) -> int:
    result = await conn.execute(stmt)
    return int(result.rowcount or 0)


async def reclaim_sqlite_space(engine: AsyncEngine) -> None:
    """Give freed pages back to the file system on SQLite databases in incremental
    auto-vacuum mode (new databases are created that way); a no-op elsewhere."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        mode = await conn.scalar(sa.text("PRAGMA auto_vacuum"))
        if mode == 2:
            await conn.exec_driver_sql("PRAGMA incremental_vacuum")
            await conn.commit()


async def run_pruner(
    engine: AsyncEngine, policy: RetentionPolicy, interval_s: float, pause_s: float = 0.05
) -> None:
    """Prune every `interval_s` until cancelled (the API process runs one of these)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await prune(engine, policy, pause_s=pause_s)
            await reclaim_sqlite_space(engine)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention: prune pass failed; retrying at the next interval")
            continue
        if any(report.as_dict().values()):
            log.info("retention: removed %s", report.as_dict())
