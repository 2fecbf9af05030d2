"""Schema migrations from Python: used by `cronicorn db upgrade`, `cronicorn run` and `/ready`.

The Alembic scripts ship inside the package (`cronicorn/store/migrations`), so this works
from an installed wheel without an alembic.ini. `upgrade_database` is synchronous (Alembic
runs its own event loop); from async code use `upgrade_database_async`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.db import create_engine, normalize_database_url
from cronicorn.store.tables import Base

SCRIPT_LOCATION = "cronicorn.store:migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts and (optionally) a database."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        cfg.attributes["database_url"] = url
    return cfg


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (creating a SQLite file and its
    directory if needed). Synchronous; do not call from a running event loop."""
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_database_async(url: str, revision: str = "head") -> None:
    """`upgrade_database` for async callers (runs Alembic in a worker thread)."""
    await asyncio.to_thread(upgrade_database, url, revision)


def stamp_database(url: str, revision: str = "head") -> None:
    """Record `revision` without running migrations (for a schema made by
    `Base.metadata.create_all`, as the test fixtures do). Synchronous, like upgrade."""
    command.stamp(alembic_config(url), revision)


def _current_heads(conn: Connection) -> set[str]:
    return set(MigrationContext.configure(conn).get_current_heads())


async def check_migrations_current(database: str | AsyncEngine) -> bool:
    """True when the database is at the head revision (used by `/ready`)."""
    engine = create_engine(database) if isinstance(database, str) else database
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(_current_heads)
    finally:
        if isinstance(database, str):
            await engine.dispose()
    return current == head_revisions()


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(
        conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
    )
    return list(compare_metadata(ctx, Base.metadata))


async def schema_drift(database: str | AsyncEngine) -> list[Any]:
    """Differences between the live schema and `tables.py` (empty list: no drift)."""
    engine = create_engine(database) if isinstance(database, str) else database
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        if isinstance(database, str):
            await engine.dispose()
