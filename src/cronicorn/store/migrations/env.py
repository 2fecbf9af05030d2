"""Alembic environment: async engines, one schema for SQLite (batch mode) and PostgreSQL.

The database URL comes from, in order: `config.attributes["database_url"]` (set by
`cronicorn.store.migrate`), `CRONICORN_DATABASE_URL`, `sqlalchemy.url` in alembic.ini, and
the default `sqlite:///./cronicorn.db`. URLs are accepted as users write them.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from cronicorn.store.db import DEFAULT_DATABASE_URL, normalize_database_url, private_sqlite_file
from cronicorn.store.tables import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or os.environ.get("CRONICORN_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_DATABASE_URL
    )
    return normalize_database_url(str(url))


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our `UTCDateTime` as the plain type it stores, so migrations never import
    application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )


def run_sync_migrations(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    url = database_url()
    if make_url(url).get_backend_name() == "sqlite":
        private_sqlite_file(url)  # `cronicorn db upgrade` is what usually creates the file
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(run_sync_migrations)
            await conn.commit()
    finally:
        await engine.dispose()


def run_offline() -> None:
    """`alembic upgrade --sql`: render SQL for the URL's dialect without connecting."""
    context.configure(
        url=make_url(database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=make_url(database_url()).get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    run_sync_migrations(shared)
else:
    asyncio.run(run_async_migrations())
