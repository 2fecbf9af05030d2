"""Shared fixtures: a fresh database per test, on SQLite and (when available) PostgreSQL.

`database_url` is parametrised over both back ends so the *same* test function runs on each.
PostgreSQL tests read CRONICORN_TEST_POSTGRES_URL; without it they skip with a reason,
except under CI (CI=true), where a missing Postgres is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy.engine import make_url

from cronicorn.store.db import create_engine
from cronicorn.store.tables import Base

T = TypeVar("T")
POSTGRES_ENV = "CRONICORN_TEST_POSTGRES_URL"


def run_in_thread(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a private loop in another thread (safe from inside any test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()  # type: ignore[arg-type]


def postgres_admin_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set under CI: Postgres tests must run in CI")
        pytest.skip(f"{POSTGRES_ENV} not set: PostgreSQL tests skipped on this machine")
    return url


async def _create_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


async def _pg_exec(admin_url: str, sql: str) -> None:
    import asyncpg  # imported lazily: only Postgres tests need it

    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A template database with the schema, cloned per test (fast, isolated)."""
    admin = postgres_admin_url()
    assert admin is not None
    name = f"cronicorn_tpl_{uuid.uuid4().hex[:10]}"
    run_in_thread(lambda: _pg_exec(admin, f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    run_in_thread(lambda: _create_schema(url))
    yield name
    run_in_thread(lambda: _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A PostgreSQL database with no schema at all (a fresh install's), dropped after."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("CRONICORN_TEST_POSTGRES_URL not set")
    name = f"cronicorn_fresh_{uuid.uuid4().hex[:12]}"
    run_in_thread(lambda: _pg_exec(admin, f'CREATE DATABASE "{name}"'))
    yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    run_in_thread(lambda: _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_postgres_url(template: str) -> Iterator[str]:
    admin = postgres_admin_url()
    assert admin is not None
    name = f"cronicorn_t_{uuid.uuid4().hex[:12]}"
    run_in_thread(lambda: _pg_exec(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    run_in_thread(lambda: _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cronicorn-test.db'}"
    run_in_thread(lambda: _create_schema(url))
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database with the schema, as a user would write it."""
    if request.param == "sqlite":
        yield fresh_sqlite_url(tmp_path)
    else:
        template = request.getfixturevalue("postgres_template")
        yield from fresh_postgres_url(template)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return fresh_sqlite_url(tmp_path)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("postgres_template")
    yield from fresh_postgres_url(template)
