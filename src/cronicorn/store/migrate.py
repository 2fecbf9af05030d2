"""Schema migrations from Python: used by `cronicorn db upgrade`, `cronicorn serve`, the engine
(`prepare_schema`) and `/ready`.

The Alembic scripts ship inside the package (`cronicorn/store/migrations`), so this works
from an installed wheel without an alembic.ini. `upgrade_database` is synchronous (Alembic
runs its own event loop); from async code use `upgrade_database_async`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.errors import ConfigError
from cronicorn.store.db import create_engine, normalize_database_url
from cronicorn.store.tables import Base

SCRIPT_LOCATION = "cronicorn.store:migrations"
logger = logging.getLogger("cronicorn.store.migrate")


class SchemaNotReady(ConfigError):
    """The PostgreSQL schema is missing or not at this version's revision."""


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts and (optionally) a database."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        cfg.attributes["database_url"] = url
    return cfg


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database).expanduser().resolve()
    return None


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (creating a SQLite file and its
    directory if needed). Synchronous; do not call from a running event loop."""
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_database_async(url: str, revision: str = "head") -> None:
    """`upgrade_database` for async callers (runs Alembic in a worker thread)."""
    await asyncio.to_thread(upgrade_database, url, revision)


async def prepare_schema(url: str) -> None:
    """Make sure the schema fits this version before an engine uses the database.

    Embedded SQLite (the default): migrate to head, creating the file if needed (and say
    where). PostgreSQL is shared by every process, so it is never migrated implicitly: a
    missing or older schema raises `SchemaNotReady`, one line naming `cronicorn db upgrade`."""
    path = sqlite_path(url)
    if make_url(normalize_database_url(url)).get_backend_name() == "sqlite":
        created = path is not None and not path.exists()
        await upgrade_database_async(url)
        if created:
            logger.warning(
                "created the SQLite database %s (set CRONICORN_DATABASE_URL to keep it elsewhere)",
                path,
            )
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(_recorded_revisions)
    finally:
        await engine.dispose()
    heads = head_revisions()
    if current == heads:
        return
    name = make_url(normalize_database_url(url)).database
    found = f"is at revision {', '.join(sorted(current))}" if current else "has no schema"
    raise SchemaNotReady(
        f"database {name!r} {found}, this version needs {', '.join(sorted(heads))}: "
        "run `cronicorn db upgrade` first"
    )


def stamp_database(url: str, revision: str = "head") -> None:
    """Record `revision` without running migrations (for a schema made by
    `Base.metadata.create_all`, as the test fixtures do). Synchronous, like upgrade."""
    command.stamp(alembic_config(url), revision)


def _recorded_revisions(conn: Connection) -> set[str]:
    """What `alembic_version` holds (read directly: Alembic's context logs at INFO)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return set()
    return set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


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
