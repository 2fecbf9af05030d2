"""Endpoints of a job: create, list, read, update, delete (tenant-scoped via the job)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.observability.redaction import MASK, join_url_secrets, split_url_secrets
from cronicorn.service.common import (
    load_endpoint,
    load_job,
    merge_secret_map,
    page_ascending,
    refuse_archived,
)
from cronicorn.service.errors import FieldErrors, StateConflict
from cronicorn.service.keys import Principal
from cronicorn.service.quotas import Quotas
from cronicorn.service.schemas import EndpointCreate, EndpointOut, EndpointUpdate
from cronicorn.service.validation import keeps_mask
from cronicorn.store.secrets import SecretBox, masked
from cronicorn.store.tables import Endpoint, utcnow


class Endpoints:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
        quotas: Quotas = Quotas(),
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._now = clock
        self._quotas = quotas

    async def create(self, principal: Principal, job_id: str, data: EndpointCreate) -> EndpointOut:
        async with self._sessions() as session, session.begin():
            refuse_archived(await load_job(session, principal, job_id, for_update=True))
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(Endpoint).where(Endpoint.job_id == job_id)
            )
            limit = self._quotas.endpoints_per_job
            if (count or 0) >= limit:
                raise StateConflict(
                    f"quota exceeded: job {job_id} already has {limit} endpoints (the limit)"
                )
            now = self._now()
            url, url_secret = self._url(data.url, None)
            row = Endpoint(
                id=str(uuid.uuid4()),
                job_id=job_id,
                **data.model_dump(exclude={"headers", "bearer_token", "url"}),
                url=url,
                url_secret=url_secret,
                headers=self._box.encrypt_map(data.headers),
                bearer_token=self._box.encrypt(data.bearer_token) if data.bearer_token else None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        return endpoint_out(row)

    async def list_for_job(
        self, principal: Principal, job_id: str, limit: int = 100, after: str | None = None
    ) -> list[EndpointOut]:
        """Creation order; pass the last id you saw as `after` for the next page."""
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            base = sa.select(Endpoint).where(Endpoint.job_id == job_id)
            cursor = None
            if after is not None:
                ref = await session.scalar(base.where(Endpoint.id == after))
                if ref is None:
                    raise FieldErrors(
                        [("after", f"unknown endpoint id for this job: {after}")], "query"
                    )
                cursor = (ref.created_at, ref.id)
            stmt = page_ascending(base, Endpoint.created_at, Endpoint.id, cursor, limit)
            return [endpoint_out(row) for row in await session.scalars(stmt)]

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
            for name in given - {"headers", "bearer_token", "url"}:
                setattr(row, name, getattr(data, name))
            if data.url is not None:
                row.url, row.url_secret = self._url(data.url, row.url_secret)
            if data.headers is not None:
                row.headers = merge_secret_map("headers", data.headers, row.headers, self._box)
            if "bearer_token" in given:
                row.bearer_token = self._bearer(data.bearer_token, row.bearer_token)
            row.updated_at = self._now()
        return endpoint_out(row)

    def _url(self, given: str, stored: str | None) -> tuple[str, str | None]:
        """(URL to store, with `***` for its secrets; their ciphertext). A `***` in the given
        URL keeps the stored secret at that place, as for header values."""
        full, missing = join_url_secrets(given, self._box.decrypt_json(stored) if stored else None)
        if missing:
            raise FieldErrors(
                [("url", f'"***" given for the {missing[0]}, which has no stored value')]
            )
        url, secrets = split_url_secrets(full)
        return url, self._box.encrypt_json(secrets) if secrets else None

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
        url=split_url_secrets(row.url)[0],  # rows stored before url_secret existed
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
