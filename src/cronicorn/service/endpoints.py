"""Endpoints of a job: create, list, read, update, delete (tenant-scoped via the job)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.service.common import load_endpoint, load_job, merge_secret_map, refuse_archived
from cronicorn.service.errors import FieldErrors, StateConflict
from cronicorn.service.keys import Principal
from cronicorn.service.schemas import EndpointCreate, EndpointOut, EndpointUpdate
from cronicorn.service.validation import keeps_mask
from cronicorn.store.secrets import MASK, SecretBox, masked
from cronicorn.store.tables import Endpoint, utcnow

MAX_ENDPOINTS_PER_JOB = 100


class Endpoints:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._now = clock

    async def create(self, principal: Principal, job_id: str, data: EndpointCreate) -> EndpointOut:
        async with self._sessions() as session, session.begin():
            refuse_archived(await load_job(session, principal, job_id, for_update=True))
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(Endpoint).where(Endpoint.job_id == job_id)
            )
            if (count or 0) >= MAX_ENDPOINTS_PER_JOB:
                raise StateConflict(f"job {job_id} already has {MAX_ENDPOINTS_PER_JOB} endpoints")
            now = self._now()
            row = Endpoint(
                id=str(uuid.uuid4()),
                job_id=job_id,
                **data.model_dump(exclude={"headers", "bearer_token"}),
                headers=self._box.encrypt_map(data.headers),
                bearer_token=self._box.encrypt(data.bearer_token) if data.bearer_token else None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        return endpoint_out(row)

    async def list_for_job(self, principal: Principal, job_id: str) -> list[EndpointOut]:
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            rows = await session.scalars(
                sa.select(Endpoint)
                .where(Endpoint.job_id == job_id)
                .order_by(Endpoint.created_at, Endpoint.id)
            )
            return [endpoint_out(row) for row in rows]

    async def get(self, principal: Principal, endpoint_id: str) -> EndpointOut:
        async with self._sessions() as session:
            row, _job = await load_endpoint(session, principal, endpoint_id)
            return endpoint_out(row)

    async def update(
        self, principal: Principal, endpoint_id: str, data: EndpointUpdate
    ) -> EndpointOut:
        given = data.model_fields_set
        async with self._sessions() as session, session.begin():
            row, job = await load_endpoint(session, principal, endpoint_id)
            refuse_archived(job)
            for name in given - {"headers", "bearer_token"}:
                setattr(row, name, getattr(data, name))
            if data.headers is not None:
                row.headers = merge_secret_map("headers", data.headers, row.headers, self._box)
            if "bearer_token" in given:
                row.bearer_token = self._bearer(data.bearer_token, row.bearer_token)
            row.updated_at = self._now()
        return endpoint_out(row)

    def _bearer(self, given: str | None, stored: str | None) -> str | None:
        """The ciphertext to store for a PATCHed token ("***" keeps, null clears)."""
        if given is None:
            return None
        if keeps_mask(given):
            if stored is None:
                raise FieldErrors([("bearer_token", '"***" given but no token is stored')])
            return stored
        return self._box.encrypt(given)

    async def delete(self, principal: Principal, endpoint_id: str) -> None:
        async with self._sessions() as session, session.begin():
            row, job = await load_endpoint(session, principal, endpoint_id)
            refuse_archived(job)
            await session.delete(row)


def endpoint_out(row: Endpoint) -> EndpointOut:
    return EndpointOut(
        id=row.id,
        job_id=row.job_id,
        name=row.name,
        description=row.description,
        url=row.url,
        method=row.method,
        headers=masked(row.headers or {}),
        body=row.body,
        request_schema=row.request_schema,
        timeout_ms=row.timeout_ms,
        max_response_bytes=row.max_response_bytes,
        fire_and_forget=row.fire_and_forget,
        bearer_token=MASK if row.bearer_token else None,
        ai_view=row.ai_view,
        condition=row.condition,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
