"""Read-backs for assertions: what the code under test wrote, straight from the tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import (
    Base,
    EndpointResult,
    JobError,
    Message,
    Worker,
    jobs_t,
    runs_t,
)


async def _rows(db: AsyncEngine, stmt: sa.Select[Any]) -> list[sa.RowMapping]:
    async with db.connect() as conn:
        return list((await conn.execute(stmt)).mappings())


async def job(db: AsyncEngine, job_id: str) -> sa.RowMapping:
    [row] = await _rows(db, sa.select(jobs_t).where(jobs_t.c.id == job_id))
    return row


async def run_of(db: AsyncEngine, run_id: str) -> sa.RowMapping:
    [row] = await _rows(db, sa.select(runs_t).where(runs_t.c.id == run_id))
    return row


async def runs(db: AsyncEngine, job_id: str) -> list[sa.RowMapping]:
    stmt = sa.select(runs_t).where(runs_t.c.job_id == job_id).order_by(runs_t.c.started_at)
    return await _rows(db, stmt)


async def results(db: AsyncEngine, run_id: str) -> list[sa.RowMapping]:
    table = EndpointResult.__table__
    stmt = sa.select(table).where(EndpointResult.run_id == run_id).order_by(EndpointResult.position)
    return await _rows(db, stmt)


async def errors(db: AsyncEngine, job_id: str) -> list[sa.RowMapping]:
    return await _rows(db, sa.select(JobError.__table__).where(JobError.job_id == job_id))


async def messages(db: AsyncEngine, job_id: str) -> list[sa.RowMapping]:
    stmt = sa.select(Message.__table__).where(Message.job_id == job_id)
    return await _rows(db, stmt.order_by(Message.created_at))


async def workers(db: AsyncEngine) -> list[sa.RowMapping]:
    return await _rows(db, sa.select(Worker.__table__))


async def dump(db: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered, for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in rows]
    return out
