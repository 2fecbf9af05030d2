"""Test data inserted with plain SQL: tenants, jobs, endpoints, messages and results.

The one seed factory of the store, engine and contract tests: the code under test does its
own writes, so the data it starts from is written around it. Every helper takes the
`AsyncEngine` of the database under test; defaults make a due, active job (`at(-60)`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint, EndpointResult, Message, Tenant, jobs_t
from tests.fakes.clock import T0

ENDPOINT_URL = "http://127.0.0.1:9/orders"
"""A local address nothing listens on (tests that only store endpoints)."""


def at(seconds: float) -> datetime:
    """`T0` plus `seconds`: the fixed timeline the store tests use."""
    return T0 + timedelta(seconds=seconds)


async def add_tenant(db: AsyncEngine, name: str | None = None) -> str:
    tenant_id = str(uuid.uuid4())
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(Tenant).values(id=tenant_id, name=name or f"t-{tenant_id[:8]}")
        )
    return tenant_id


def job_row(tenant_id: str, **fields: Any) -> dict[str, Any]:
    """A job row (active, due at `at(-60)` unless `next_run_at` is given); created and
    updated at its due time unless given."""
    due = fields.get("next_run_at", at(-60))
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "name": "job",
        "definition": "poll the orders API",
        "status": "active",
        "next_run_at": due,
        "created_at": due or T0,
        "updated_at": due or T0,
    }
    row.update(fields)
    return row


async def add_jobs(
    db: AsyncEngine, rows: list[dict[str, Any]], endpoints: list[dict[str, Any]] | None = None
) -> list[str]:
    """Insert many job rows, and their `endpoint_row`s, in one transaction (fast even for
    hundreds; a running engine never claims a job before its endpoints exist)."""
    async with db.begin() as conn:
        await conn.execute(sa.insert(jobs_t), rows)
        if endpoints:
            await conn.execute(sa.insert(Endpoint), endpoints)
    return [r["id"] for r in rows]


async def add_job(db: AsyncEngine, tenant_id: str, **fields: Any) -> str:
    return (await add_jobs(db, [job_row(tenant_id, **fields)]))[0]


def endpoint_row(
    box: SecretBox,
    job_id: str,
    url: str = ENDPOINT_URL,
    *,
    name: str = "orders",
    headers: Mapping[str, str] | None = None,
    bearer_token: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An endpoint row; `headers` and `bearer_token` are stored encrypted, as the API does."""
    return {
        "id": str(uuid.uuid4()),
        "job_id": job_id,
        "name": name,
        "url": url,
        "headers": box.encrypt_map(dict(headers or {})),
        "bearer_token": box.encrypt(bearer_token) if bearer_token else None,
        **fields,
    }


async def add_endpoint(
    db: AsyncEngine,
    box: SecretBox,
    job_id: str,
    url: str = ENDPOINT_URL,
    *,
    name: str = "orders",
    headers: Mapping[str, str] | None = None,
    bearer_token: str | None = None,
    **fields: Any,
) -> str:
    row = endpoint_row(
        box, job_id, url, name=name, headers=headers, bearer_token=bearer_token, **fields
    )
    async with db.begin() as conn:
        await conn.execute(sa.insert(Endpoint).values(row))
    return str(row["id"])


async def add_message(
    db: AsyncEngine, job_id: str, content: str, created_at: datetime, role: str = "user"
) -> None:
    async with db.begin() as conn:
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
    db: AsyncEngine, run_id: str, job_id: str, endpoint_id: str, started_at: datetime, body: Any
) -> None:
    async with db.begin() as conn:
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
