"""Test data and read-backs for engine tests: rows inserted with plain SQL (the engine and
the store's own writes are what the tests exercise)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import (
    Endpoint,
    EndpointResult,
    JobError,
    Message,
    Run,
    Tenant,
    Worker,
    jobs_t,
)


async def add_tenant(db: AsyncEngine) -> str:
    tenant_id = str(uuid.uuid4())
    async with db.begin() as conn:
        await conn.execute(sa.insert(Tenant).values(id=tenant_id, name=f"t-{tenant_id[:8]}"))
    return tenant_id


async def add_job(db: AsyncEngine, tenant_id: str, next_run_at: datetime, **fields: Any) -> str:
    job_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": job_id,
        "tenant_id": tenant_id,
        "name": "job",
        "definition": "poll the orders API",
        "status": "active",
        "next_run_at": next_run_at,
        "created_at": next_run_at,
        "updated_at": next_run_at,
        **fields,
    }
    async with db.begin() as conn:
        await conn.execute(sa.insert(jobs_t).values(values))
    return job_id


async def add_endpoint(
    db: AsyncEngine, box: SecretBox, job_id: str, url: str, name: str = "orders", **fields: Any
) -> str:
    endpoint_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": endpoint_id,
        "job_id": job_id,
        "name": name,
        "url": url,
        "headers": box.encrypt_map({}),
        **fields,
    }
    async with db.begin() as conn:
        await conn.execute(sa.insert(Endpoint).values(values))
    return endpoint_id


async def _rows(db: AsyncEngine, stmt: sa.Select[Any]) -> list[sa.RowMapping]:
    async with db.connect() as conn:
        return list((await conn.execute(stmt)).mappings())


async def job(db: AsyncEngine, job_id: str) -> sa.RowMapping:
    return (await _rows(db, sa.select(jobs_t).where(jobs_t.c.id == job_id)))[0]


async def runs(db: AsyncEngine, job_id: str) -> list[sa.RowMapping]:
    stmt = sa.select(Run.__table__).where(Run.job_id == job_id).order_by(Run.started_at)
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
