"""The `SchedulerBackend` contract's subjects: each backend on each database.

`subject` is parametrised over the in-process `LocalSchedulerBackend` and the
`ApiSchedulerBackend` talking to the real API served by uvicorn on 127.0.0.1, and (through
`database_url`) over SQLite and PostgreSQL: the same test runs four times. Both backends
work on the same kind of fresh database, seeded with `tests.fakes.seed` and read back with
`tests.fakes.rows`; time is the real clock (the API server's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.client import ApiSchedulerBackend
from cronicorn.client.user_api import UserApiClient
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.service.stats import scheduler_counts
from cronicorn.store.db import create_engine
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from cronicorn.wire.scheduler import WorkerOut
from tests.api.conftest import SECRET_KEY, live_server

FAST_RETRIES: dict[str, Any] = {"retry_base_delay_s": 0.01}


class WorkerView(Protocol):
    """A `list_workers` entry, as either backend returns it."""

    @property
    def id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def last_heartbeat_at(self) -> datetime: ...
    @property
    def stopped_at(self) -> datetime | None: ...
    @property
    def stats(self) -> dict[str, Any]: ...


class ContractBackend(SchedulerBackend, Protocol):
    """The port plus the operations both backends offer beyond it (worker presence and the
    admin's force-unlock), which the engine and the CLI use."""

    async def list_workers(self) -> Sequence[WorkerView]: ...

    async def mark_worker_stopped(self, worker_id: str) -> None: ...

    async def force_unlock(
        self, job_ids: Sequence[str] | None = None, stale_only: bool = True
    ) -> list[str]: ...


@dataclass
class Subject:
    """One backend under contract. `admin` is the same backend with the admin's rights
    (over the API, force-unlock needs an admin key); `db` is the database behind it."""

    name: str
    backend: ContractBackend
    admin: ContractBackend
    db: AsyncEngine
    box: SecretBox
    read_stats: Callable[[], Awaitable[dict[str, Any]]]

    async def stats(self) -> dict[str, Any]:
        """Scheduler-wide counts: `GET /api/scheduler/stats` over the API; in process the
        same `scheduler_counts` that route serves (the local backend has no `stats()`)."""
        return await self.read_stats()


class _ApiBackend(ApiSchedulerBackend):
    """Over HTTP: the engine's client for the port, and the operator's client
    (`UserApiClient`, as the CLI uses it) for the worker list and force-unlock."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, key, **FAST_RETRIES)
        self.user = UserApiClient(url, key)

    async def list_workers(self) -> list[WorkerOut]:
        return await self.user.workers()

    async def force_unlock(
        self, job_ids: Sequence[str] | None = None, stale_only: bool = True
    ) -> list[str]:
        return await self.user.force_unlock(job_ids, stale_only)

    async def close(self) -> None:
        await super().close()
        await self.user.aclose()


@pytest.fixture(params=["local", "api"])
async def subject(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Subject]:
    db = create_engine(database_url)
    box = SecretBox(SECRET_KEY)
    try:
        if request.param == "local":
            local = LocalSchedulerBackend(db, box, poll_interval_ms=60_000)

            async def local_stats() -> dict[str, Any]:
                counts = await scheduler_counts(db, datetime.now(UTC))
                return {**counts, "next_due_at": await local.next_due_at()}

            yield Subject("local", local, local, db, box, local_stats)
            await local.close()
        else:
            async with live_server(database_url) as server:
                api = _ApiBackend(server.url, server.keys["engine"])
                admin = _ApiBackend(server.url, server.keys["admin"])

                async def api_stats() -> dict[str, Any]:
                    return (await api.user.scheduler_stats()).model_dump()

                yield Subject("api", api, admin, db, box, api_stats)
                await api.close()
                await admin.close()
    finally:
        await db.dispose()
