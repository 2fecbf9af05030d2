"""PostgreSQL pool: a connection idle long enough is pinged before reuse, so a connection
the server dropped costs a reconnect, not an error; one reused at once is not pinged."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

from cronicorn.store import db as db_module
from cronicorn.store.db import create_engine

pytestmark = pytest.mark.postgres

PID = sa.text("SELECT pg_backend_pid()")


def count_pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    ping: Any = AsyncAdapt_asyncpg_connection.ping

    def counted(self: Any) -> None:
        pings.append(1)
        ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    return pings


async def test_a_dropped_idle_connection_is_replaced_not_raised(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    pings = count_pings(monkeypatch)
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    admin = create_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(PID)).scalar_one()
        async with admin.connect() as other:
            await other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": first})
        async with engine.connect() as conn:
            second = (await conn.execute(PID)).scalar_one()
        assert second != first
        assert pings
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_connection_reused_at_once_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = count_pings(monkeypatch)
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        for _ in range(3):
            async with engine.connect() as conn:
                await conn.execute(PID)
        assert pings == []
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
        async with engine.connect() as conn:
            await conn.execute(PID)
        assert pings == [1]
    finally:
        await engine.dispose()


async def test_connections_plan_each_execution_unless_told_otherwise(postgres_url: str) -> None:
    """`store.db.PLAN_CACHE_MODE`: no generic plans for our prepared statements; a caller's
    own server settings are kept beside it, and may override it."""
    show = sa.text("SELECT current_setting('plan_cache_mode'), current_setting('jit')")
    engines = [
        create_engine(postgres_url),
        create_engine(postgres_url, connect_args={"server_settings": {"jit": "off"}}),
        create_engine(
            postgres_url,
            connect_args={"server_settings": {"plan_cache_mode": "auto", "jit": "off"}},
        ),
    ]
    try:
        seen = []
        for engine in engines:
            async with engine.connect() as conn:
                seen.append(tuple((await conn.execute(show)).one()))
    finally:
        for engine in engines:
            await engine.dispose()
    jit_default = seen[0][1]
    assert seen == [
        ("force_custom_plan", jit_default),
        ("force_custom_plan", "off"),
        ("auto", "off"),
    ]
