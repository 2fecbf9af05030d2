"""Retention: remove old history in small, paced batches so storage stays bounded.

What goes (see docs/operations.md):

- runs (with their endpoint results and AI sessions) that started longer ago than the run
  retention, or that are beyond the newest `max_runs_per_job` of their job; a run still
  `running` is never removed;
- messages older than their job's run retention (they describe the runs they came from);
- job errors older than the error retention, and alert incidents resolved longer ago than
  that (with their delivery log), and finished test deliveries of that age.

Per-job `run_retention_days` / `max_runs_per_job` override the global policy.

How a pass stays out of the hot path's way (measured with `bench.prune_load`):

- every rule is a walk along an index in its own order (`ix_runs_started`,
  `ix_runs_job_started`, `ix_messages_created`, `ix_job_errors_created`), `batch_size` rows at
  a time, each batch resuming where the last one ended (keyset), so a batch never re-reads
  the dead rows the batches before it left behind;
- on PostgreSQL a batch is one statement (data-modifying CTEs: pick the batch, delete its
  endpoint results, AI sessions and runs, return counts) and its own transaction; the
  API process does no per-row work;
- the per-job cap is found job by job (chunks of `CAP_CHUNK_JOBS` jobs, each reading at most
  its newest `cap` index entries) after the age rules have run, not by counting the whole
  table in one statement;
- the pass is paced by a duty cycle: after each statement it sleeps in proportion to the
  statement's own duration, so its statements take at most `duty_percent` % of the wall time
  and the database keeps headroom for claims;
- it touches only history tables, never `jobs` rows (it reads them without locks), so the
  claim path never waits on it; the background pruner has its own PostgreSQL connection
  (with `synchronous_commit=off`: a delete lost in a crash is redone by the next pass; and
  `jit=off`), and a
  session advisory lock lets one API process of several prune at a time.

Token and cost totals live on the job row (they are running totals, not sums over history),
so pruning never changes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.store.db import create_engine
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
DEFAULT_PRUNE_DUTY_PERCENT = 25
CAP_CHUNK_JOBS = 100
"""Jobs whose run count is checked against the cap in one statement."""
PRUNER_LOCK = 0x63726F6E  # "cron": pg_try_advisory_lock key of a pruning pass


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
    busy_s: float = field(default=0.0, compare=False)
    """Time spent in the pass's statements (the rest of its wall time it slept)."""
    skipped: bool = field(default=False)
    """Another process held the pruning lock: this pass did nothing."""

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


class _Pacer:
    """Sleeps after each statement so that statements take at most `duty_percent` % of the
    pass's wall time (100: no sleeping)."""

    def __init__(self, duty_percent: int, report: PruneReport) -> None:
        if not 1 <= duty_percent <= 100:
            raise ValueError(f"duty_percent must be 1..100, got {duty_percent}")
        self._rest_per_busy = (100 - duty_percent) / duty_percent
        self._report = report

    async def rest(self, started: float) -> None:
        """After a statement that began at `started` (`time.monotonic()`)."""
        busy = time.monotonic() - started
        self._report.busy_s += busy
        if self._rest_per_busy > 0:
            await asyncio.sleep(busy * self._rest_per_busy)

    def batch_done(self) -> None:
        self._report.batches += 1


_FINISHED = Run.status != "running"
_Model = type[Run] | type[Message] | type[JobError] | type[Alert] | type[AlertDelivery]
_Child = tuple[type[EndpointResult] | type[AISessionRow], sa.orm.InstrumentedAttribute[str]]
_RUN_CHILDREN: tuple[_Child, ...] = (
    (EndpointResult, EndpointResult.run_id),
    (AISessionRow, AISessionRow.run_id),
)


async def prune(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    duty_percent: int = 100,
) -> PruneReport:
    """One full pass over the history tables; returns what was (or would be) removed.

    `duty_percent` < 100 paces the pass (the background pruner); `cronicorn db prune` runs
    at full speed. On PostgreSQL a pass that finds another process's pass running skips
    (`report.skipped`)."""
    report = PruneReport(dry_run=dry_run)
    pacer = _Pacer(duty_percent, report)
    locking = engine.dialect.name == "postgresql" and not dry_run
    async with engine.connect() as conn:
        if locking:
            got = await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(PRUNER_LOCK)))
            await conn.commit()
            if not got:
                report.skipped = True
                return report
        try:
            await _pass(conn, policy, now or utcnow(), report, pacer)
        finally:
            if locking and not conn.invalidated:  # a lost connection took its lock along
                await conn.rollback()
                await conn.scalar(sa.select(sa.func.pg_advisory_unlock(PRUNER_LOCK)))
                await conn.commit()
    return report


async def _pass(
    conn: AsyncConnection,
    policy: RetentionPolicy,
    now: datetime,
    report: PruneReport,
    pacer: _Pacer,
) -> None:
    overrides = (
        await conn.execute(
            sa.select(Job.id, Job.run_retention_days, Job.max_runs_per_job).where(
                sa.or_(Job.run_retention_days.is_not(None), Job.max_runs_per_job.is_not(None))
            )
        )
    ).all()
    await conn.commit()
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

    batch = policy.batch_size
    if report.dry_run:
        # Counting is one statement per table; cap boundaries found before or after the age
        # rules select the same union of runs.
        run_conditions = by_age + await _over_cap_conditions(conn, policy, overrides, pacer)
        if run_conditions:
            await _count_runs(conn, sa.or_(*run_conditions), report)
        if msg_by_age:
            report.messages += await _count(conn, Message, sa.or_(*msg_by_age))
    else:
        for condition in by_age:
            await _remove_runs(conn, condition, batch, report, pacer)
        # After the age rules: fewer runs left to walk for the cap.
        for condition in await _over_cap_conditions(conn, policy, overrides, pacer):
            await _remove_runs(conn, condition, batch, report, pacer)
        for condition in msg_by_age:
            gone = await _remove(conn, Message, condition, Message.created_at, (), batch, pacer)
            report.messages += gone[0]
    if policy.error_retention_days <= 0:
        return
    cutoff = now - timedelta(days=policy.error_retention_days)
    resolved = sa.and_(Alert.status == "resolved", Alert.resolved_at < cutoff)
    deliveries = sa.or_(
        AlertDelivery.alert_id.in_(sa.select(Alert.id).where(resolved)),
        sa.and_(
            AlertDelivery.alert_id.is_(None),
            AlertDelivery.status != "pending",
            AlertDelivery.created_at < cutoff,
        ),
    )
    steps: list[tuple[_Model, sa.ColumnElement[bool], Any]] = [
        (JobError, JobError.created_at < cutoff, JobError.created_at),
        (AlertDelivery, deliveries, AlertDelivery.id),
        (Alert, resolved, Alert.id),
    ]
    for model, condition, order in steps:
        if report.dry_run:
            removed = await _count(conn, model, condition)
        else:
            removed = (await _remove(conn, model, condition, order, (), batch, pacer))[0]
        if model is JobError:
            report.job_errors += removed
        elif model is AlertDelivery:
            report.alert_deliveries += removed
        else:
            report.alerts += removed


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


def _boundary(job_id: Any, cap: int) -> sa.ScalarSelect[datetime]:
    """The start of a job's `cap`-th newest run (None: it has fewer): an index walk of at
    most `cap` entries of `ix_runs_job_started`."""
    return (
        sa.select(Run.started_at)
        .where(Run.job_id == job_id)
        .order_by(Run.started_at.desc())
        .offset(cap - 1)
        .limit(1)
        .scalar_subquery()
    )


async def _over_cap_conditions(
    conn: AsyncConnection, policy: RetentionPolicy, overrides: Sequence[_Override], pacer: _Pacer
) -> list[sa.ColumnElement[bool]]:
    """For each job over its run cap: the runs older than its newest `cap` runs.

    Jobs on the global cap are checked `CAP_CHUNK_JOBS` at a time in job id order, each by
    its own bounded index walk; jobs with their own cap one by one."""
    conditions: list[sa.ColumnElement[bool]] = []
    found: list[tuple[str, datetime]] = []
    if policy.max_runs_per_job > 0:
        after = ""
        while True:
            started = time.monotonic()
            chunk = (
                sa.select(Job.id)
                .where(Job.id > after, Job.max_runs_per_job.is_(None))
                .order_by(Job.id)
                .limit(CAP_CHUNK_JOBS)
                .subquery()
            )
            rows = (
                await conn.execute(
                    sa.select(chunk.c.id, _boundary(chunk.c.id, policy.max_runs_per_job)).order_by(
                        chunk.c.id
                    )
                )
            ).all()
            await conn.commit()
            await pacer.rest(started)
            if not rows:
                break
            after = rows[-1][0]
            found += [(job_id, at) for job_id, at in rows if at is not None]
    for row in overrides:
        if row.max_runs_per_job:
            started = time.monotonic()
            at = await conn.scalar(sa.select(_boundary(row.id, row.max_runs_per_job)))
            await conn.commit()
            await pacer.rest(started)
            if at is not None:
                found.append((row.id, at))
    for job_id, at in found:
        conditions.append(sa.and_(Run.job_id == job_id, Run.started_at < at))
    return conditions


async def _count(
    conn: AsyncConnection,
    model: _Model | type[EndpointResult] | type[AISessionRow],
    condition: sa.ColumnElement[bool],
) -> int:
    count = sa.select(sa.func.count()).select_from(model).where(condition)
    result = int(await conn.scalar(count) or 0)
    await conn.commit()
    return result


async def _count_runs(
    conn: AsyncConnection, condition: sa.ColumnElement[bool], report: PruneReport
) -> None:
    condition = sa.and_(condition, _FINISHED)
    matching = sa.select(Run.id).where(condition).scalar_subquery()
    report.runs += await _count(conn, Run, condition)
    report.endpoint_results += await _count(
        conn, EndpointResult, EndpointResult.run_id.in_(matching)
    )
    report.ai_sessions += await _count(conn, AISessionRow, AISessionRow.run_id.in_(matching))


async def _remove_runs(
    conn: AsyncConnection,
    condition: sa.ColumnElement[bool],
    batch_size: int,
    report: PruneReport,
    pacer: _Pacer,
) -> None:
    """Finished runs matching `condition`, oldest first, with their endpoint results and AI
    sessions."""
    runs, results, sessions = await _remove(
        conn, Run, sa.and_(condition, _FINISHED), Run.started_at, _RUN_CHILDREN, batch_size, pacer
    )
    report.runs += runs
    report.endpoint_results += results
    report.ai_sessions += sessions


async def _remove(
    conn: AsyncConnection,
    model: _Model,
    condition: sa.ColumnElement[bool],
    order: Any,
    children: tuple[_Child, ...],
    batch_size: int,
    pacer: _Pacer,
) -> list[int]:
    """Delete the rows matching `condition` in batches along `order` (an indexed column),
    each batch with the rows of `children` that point at it; returns the counts removed
    (the model's, then each child's)."""
    totals = [0] * (1 + len(children))
    after: Any = None
    postgres = conn.dialect.name == "postgresql"
    while True:
        started = time.monotonic()
        where = condition if after is None else sa.and_(condition, order >= after)
        pick = sa.select(model.id, order.label("k")).where(where).order_by(order)
        pick = pick.limit(batch_size)
        if postgres:
            counts, last = await _remove_batch_pg(conn, model, pick, children)
        else:
            counts, last = await _remove_batch(conn, model, pick, children)
        await conn.commit()
        if last is None:  # nothing left to pick
            await pacer.rest(started)
            return totals
        pacer.batch_done()
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        after = last
        await pacer.rest(started)


async def _remove_batch_pg(
    conn: AsyncConnection, model: _Model, pick: sa.Select[Any], children: tuple[_Child, ...]
) -> tuple[list[int], Any]:
    """One statement: pick the batch, delete it and its children, return the counts and the
    batch's last key. The batch's own rows go by their physical address (a TID scan: a
    third of the cost of primary-key lookups for messages, measured); a row updated meanwhile
    has a new address and is left for the next pass."""
    table = model.__tablename__
    doomed = pick.add_columns(sa.literal_column(f"{table}.ctid").label("row_tid")).cte("doomed")
    ids = sa.select(doomed.c.id)
    child_counts = []
    for n, (child, fk) in enumerate(children):
        gone = sa.delete(child).where(fk.in_(ids)).returning(sa.literal(1)).cte(f"gone_{n}")
        child_counts.append(sa.select(sa.func.count()).select_from(gone).scalar_subquery())
    tids = sa.func.array(sa.select(doomed.c.row_tid).scalar_subquery())
    main = (
        sa.delete(model)
        .where(sa.literal_column(f"{table}.ctid") == sa.any_(tids))
        .returning(model.id)
        .cte("gone")
    )
    last = sa.select(sa.func.max(doomed.c.k)).scalar_subquery()
    stmt = sa.select(sa.func.count(), last, *child_counts).select_from(main)
    row = (await conn.execute(stmt)).one()
    return [int(row[0]), *(int(c) for c in row[2:])], row[1]


async def _remove_batch(
    conn: AsyncConnection, model: _Model, pick: sa.Select[Any], children: tuple[_Child, ...]
) -> tuple[list[int], Any]:
    rows = (await conn.execute(pick)).all()
    if not rows:
        return [0] * (1 + len(children)), None
    ids = [row[0] for row in rows]
    counts = [await _delete(conn, sa.delete(child).where(fk.in_(ids))) for child, fk in children]
    return [await _delete(conn, sa.delete(model).where(model.id.in_(ids))), *counts], rows[-1][1]


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


def pruner_engine(shared: AsyncEngine) -> AsyncEngine:
    """The background pruner's own PostgreSQL connection (one, never the API's pool), with
    asynchronous commit and no JIT (the planner's row estimates for the cap check's chunks
    pass the JIT threshold after a large delete, and compiling took 8-10 ms of a 3 ms
    statement, measured); on SQLite (one writer at a time anyway, maybe in memory) the API's
    engine itself."""
    if shared.dialect.name != "postgresql":
        return shared
    return create_engine(
        shared.url.render_as_string(hide_password=False),
        pool_size=1,
        max_overflow=0,
        connect_args={
            "server_settings": {
                "application_name": "cronicorn-pruner",
                "synchronous_commit": "off",
                "jit": "off",
                # PostgreSQL's default, not the pool's per-execution planning
                # (`store.db.PLAN_CACHE_MODE`): a pass of 1 M runs took 363.5 s with its
                # batches planned each time against 214-229 s (three runs) without.
                "plan_cache_mode": "auto",
            }
        },
    )


async def run_pruner(
    engine: AsyncEngine,
    policy: RetentionPolicy,
    interval_s: float,
    duty_percent: int = DEFAULT_PRUNE_DUTY_PERCENT,
) -> None:
    """Prune every `interval_s` until cancelled (the API process runs one of these), paced
    at `duty_percent`, on its own connection (`pruner_engine`)."""
    own = pruner_engine(engine)
    try:
        while True:
            await asyncio.sleep(interval_s)
            started = time.monotonic()
            try:
                report = await prune(own, policy, duty_percent=duty_percent)
                await reclaim_sqlite_space(own)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention: prune pass failed; retrying at the next interval")
                continue
            if any(report.as_dict().values()):
                log.info(
                    "retention: removed %s in %.1f s (%.1f s in statements)",
                    report.as_dict(),
                    time.monotonic() - started,
                    report.busy_s,
                )
    finally:
        if own is not engine:
            await own.dispose()
