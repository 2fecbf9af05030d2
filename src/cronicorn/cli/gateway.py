"""One interface for the user operations the CLI needs, over the API or the database.

`open_gateway()` returns a `UserApiClient` when `CRONICORN_API_URL` is set, else a
`LocalGateway` that calls the service layer in-process. In-process, the caller is the
tenant of `CRONICORN_API_KEY` if one is set, else an admin of the tenant named `default`
(created on first use), so a single-user SQLite install needs no key at all.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from cronicorn.cli.common import EXIT_USAGE, CliError
from cronicorn.cli.compose import api_target
from cronicorn.client.user_api import UserApiClient
from cronicorn.engine.factory import API_KEY_ENV
from cronicorn.service import Principal, Services
from cronicorn.service.alert_schemas import ChannelOut, DeliveryOut
from cronicorn.service.schemas import (
    EndpointCreate,
    EndpointOut,
    JobCreate,
    JobOut,
    RunDetail,
    RunOut,
)
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.migrate import upgrade_database_async
from cronicorn.store.secrets import SecretBox

DEFAULT_TENANT = "default"


class Gateway(Protocol):
    async def create_job(self, data: JobCreate) -> JobOut: ...

    async def list_jobs(self, limit: int = 100) -> list[JobOut]: ...

    async def get_job(self, job_id: str) -> JobOut: ...

    async def create_endpoint(self, job_id: str, data: EndpointCreate) -> EndpointOut: ...

    async def list_endpoints(self, job_id: str) -> list[EndpointOut]: ...

    async def runs(self, job_id: str, limit: int = 20) -> list[RunOut]: ...

    async def run(self, run_id: str) -> RunDetail: ...

    async def list_channels(self) -> list[ChannelOut]: ...

    async def test_channel(self, channel: str) -> DeliveryOut: ...


class LocalGateway:
    """The `Gateway` on the service layer, as one principal."""

    def __init__(self, services: Services, principal: Principal) -> None:
        self.services = services
        self.principal = principal

    async def create_job(self, data: JobCreate) -> JobOut:
        return await self.services.jobs.create(self.principal, data)

    async def list_jobs(self, limit: int = 100) -> list[JobOut]:
        return await self.services.jobs.list(self.principal, limit=limit)

    async def get_job(self, job_id: str) -> JobOut:
        return await self.services.jobs.get(self.principal, job_id)

    async def create_endpoint(self, job_id: str, data: EndpointCreate) -> EndpointOut:
        return await self.services.endpoints.create(self.principal, job_id, data)

    async def list_endpoints(self, job_id: str) -> list[EndpointOut]:
        return await self.services.endpoints.list_for_job(self.principal, job_id)

    async def runs(self, job_id: str, limit: int = 20) -> list[RunOut]:
        return await self.services.history.runs(self.principal, job_id, limit=limit)

    async def run(self, run_id: str) -> RunDetail:
        return await self.services.history.run(self.principal, run_id)

    async def list_channels(self) -> list[ChannelOut]:
        return await self.services.alert_channels.list_channels(self.principal)

    async def test_channel(self, channel: str) -> DeliveryOut:
        return await self.services.alert_channels.test_channel(self.principal, channel)


async def local_principal(services: Services, key: str | None) -> Principal:
    """The caller in-process: the key's principal, or without a key an admin of the
    tenant named `default`."""
    if not key:
        return await services.keys.tenant_admin(DEFAULT_TENANT, key_id="cli")
    principal = await services.keys.authenticate(key)
    if principal is None:
        raise CliError(f"{API_KEY_ENV}: unknown or revoked key", EXIT_USAGE)
    return principal


@asynccontextmanager
async def local_gateway(
    settings: Settings,
    *,
    key: str | None = None,
    box: SecretBox | None = None,
) -> AsyncIterator[LocalGateway]:
    """A `LocalGateway` on `settings.database_url` (migrated first)."""
    await upgrade_database_async(settings.database_url)
    db = create_engine(settings.database_url)
    try:
        services = Services.build(
            session_factory(db), box or settings.secret_box(), alert_settings=settings.alerts
        )
        yield LocalGateway(services, await local_principal(services, key))
    finally:
        await db.dispose()


@asynccontextmanager
async def open_gateway() -> AsyncIterator[Gateway]:
    """The API when configured, else the database in-process."""
    target = api_target()
    if target is not None:
        async with UserApiClient(target.url, target.key) as api:
            yield api
        return
    async with local_gateway(Settings.from_env(), key=os.environ.get(API_KEY_ENV)) as local:
        yield local
