"""Test data for the store: tenants, jobs, endpoints, messages and results inserted with
plain SQL (the store's own writes are what the tests exercise)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import Lease, RunCompletion
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Base, Endpoint, EndpointResult, Message, Tenant, jobs_t, runs_t

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def add_tenant(engine: AsyncEngine, name: str = "acme") -> str:
    tenant_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(sa.insert(Tenant).values(id=tenant_id, name=name))
    return tenant_id


def job_row(tenant_id: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "name": "job",
        "definition": "poll the orders API",
        "status": "active",
        "next_run_at": at(-60),
        "created_at": T0,
        "updated_at": T0,
    }
    row.update(fields)
    return row


async def add_jobs(engine: AsyncEngine, rows: list[dict[str, Any]]) -> list[str]:
    async with engine.begin() as conn:
        await conn.execute(sa.insert(jobs_t), rows)
    return [r["id"] for r in rows]


async def add_job(engine: AsyncEngine, tenant_id: str, **fields: Any) -> str:
    return (await add_jobs(engine, [job_row(tenant_id, **fields)]))[0]


async def add_endpoint(
    engine: AsyncEngine,
    job_id: str,
    box: SecretBox,
    *,
    headers: dict[str, str] | None = None,
    bearer_token: str | None = None,
    **fields: Any,
) -> str:
    endpoint_id = str(uuid.uuid4())
    values: dict[str, Any] = {
        "id": endpoint_id,
        "job_id": job_id,
        "name": "orders",
        "url": "http://127.0.0.1:9/orders",
        "headers": box.encrypt_map(headers or {}),
        "bearer_token": box.encrypt(bearer_token) if bearer_token else None,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(Endpoint).values(values))
    return endpoint_id


async def add_message(
    engine: AsyncEngine, job_id: str, content: str, created_at: datetime, role: str = "user"
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Message).values(
                id=str(uuid.uuid4()),
                job_id=job_id,
                role=role,
                content=content,
                source="user",
                created_at=created_at,
            )
        )


async def add_result(
    engine: AsyncEngine, run_id: str, job_id: str, endpoint_id: str, started_at: datetime, body: Any
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(EndpointResult).values(
                run_id=run_id,
                job_id=job_id,
                endpoint_id=endpoint_id,
                status="success",
                status_code=200,
                started_at=started_at,
                response_body=body,
            )
        )


async def dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered, for before/after comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in rows]
    return out


async def job(engine: AsyncEngine, job_id: str) -> sa.RowMapping:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(jobs_t).where(jobs_t.c.id == job_id))).mappings().one()


async def complete_run(
    repo: SchedulerRepository, lease: Lease, completion: RunCompletion, now: datetime | None = None
) -> None:
    """One completion as the backend writes it (a batch of one); raises if fenced out."""
    [lost] = await repo.complete_runs([(lease, completion)], now)
    if lost is not None:
        raise lost


async def run_of(engine: AsyncEngine, run_id: str) -> sa.RowMapping:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(runs_t).where(runs_t.c.id == run_id))).mappings().one()
