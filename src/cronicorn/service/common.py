"""Helpers shared by the service modules: visibility, loading, secret maps, paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from cronicorn.domain.models import JobStatus
from cronicorn.errors import NotFoundError
from cronicorn.service.errors import FieldErrors, StateConflict
from cronicorn.service.keys import Principal
from cronicorn.service.validation import keeps_mask, plausible_id
from cronicorn.store.locks import sqlite_write_lock
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint, Job

_S = TypeVar("_S", bound="sa.Select[*tuple[Any, ...]]")


MAX_PAGE = 1000


def visible(principal: Principal, stmt: _S) -> _S:
    """Restrict a query on `jobs` to the principal's tenant (admins see every tenant)."""
    if principal.sees_all_tenants:
        return stmt
    return stmt.where(Job.tenant_id == principal.tenant_id)


async def load_job(
    session: AsyncSession, principal: Principal, job_id: str, *, for_update: bool = False
) -> Job:
    """The job if it exists and the principal may see it; NotFoundError otherwise (another
    tenant's job is indistinguishable from a missing one). `for_update` locks the job row
    until the transaction ends, on SQLite as well as PostgreSQL."""
    if not plausible_id(job_id):
        raise NotFoundError("job", job_id)
    stmt = visible(principal, sa.select(Job).where(Job.id == job_id))
    if for_update:  # SQLite ignores FOR UPDATE: take its write lock first (store/locks.py)
        await sqlite_write_lock(session, Job.id, job_id)
        stmt = stmt.with_for_update()
    job: Job | None = await session.scalar(stmt)
    if job is None:
        raise NotFoundError("job", job_id)
    return job


def refuse_archived(job: Job) -> None:
    """An archived job and its endpoints and messages are read-only."""
    if job.status == JobStatus.ARCHIVED.value:
        raise StateConflict(f"job {job.id} is archived")


async def load_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: str
) -> tuple[Endpoint, Job]:
    if not plausible_id(endpoint_id):
        raise NotFoundError("endpoint", endpoint_id)
    stmt = visible(
        principal,
        sa.select(Endpoint, Job)
        .join(Job, Job.id == Endpoint.job_id)
        .where(Endpoint.id == endpoint_id),
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFoundError("endpoint", endpoint_id)
    return row[0], row[1]


def merge_secret_map(
    field: str, given: Mapping[str, str], stored: Mapping[str, str], box: SecretBox
) -> dict[str, str]:
    """Encrypt a new secret map for storage; values "***" keep the stored ciphertext."""
    out: dict[str, str] = {}
    stored_ci = {name.lower(): value for name, value in stored.items()}
    for name, value in given.items():
        if keeps_mask(value):
            if name.lower() not in stored_ci:
                raise FieldErrors([(field, f'"***" given for {name!r}, which has no stored value')])
            out[name] = stored_ci[name.lower()]
        else:
            out[name] = box.encrypt(value)
    return out


def page(
    stmt: _S,
    ts_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: tuple[Any, str] | None,
    limit: int,
) -> _S:
    """Newest first, keyset-paginated on (timestamp, id): rows strictly before `cursor`."""
    if cursor is not None:
        ts, ident = cursor
        stmt = stmt.where(sa.or_(ts_col < ts, sa.and_(ts_col == ts, id_col < ident)))
    return stmt.order_by(ts_col.desc(), id_col.desc()).limit(min(max(limit, 1), MAX_PAGE))


def page_ascending(
    stmt: _S,
    ts_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: tuple[Any, str] | None,
    limit: int,
) -> _S:
    """Oldest first (creation order), keyset-paginated: rows strictly after `cursor`."""
    if cursor is not None:
        ts, ident = cursor
        stmt = stmt.where(sa.or_(ts_col > ts, sa.and_(ts_col == ts, id_col > ident)))
    return stmt.order_by(ts_col, id_col).limit(min(max(limit, 1), MAX_PAGE))
