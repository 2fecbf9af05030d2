"""Database URLs and async engines for SQLite and PostgreSQL."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from cronicorn.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///./cronicorn.db"


def normalize_database_url(url: str) -> str:
    """Accept URLs as users write them and pick the async driver.

    `sqlite:///path`, `postgres://…` and `postgresql://…` become `sqlite+aiosqlite` and
    `postgresql+asyncpg`; explicit async drivers are kept.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigError(f"invalid database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(normalize_database_url(url)).get_backend_name() == "sqlite"


def private_sqlite_file(url: str) -> None:
    """Create the SQLite file of `url` with mode 0600 (like `secret.key`) before SQLite
    does (it would use the umask, typically 0644), and tighten an existing file we own.
    SQLite gives its -wal/-shm files the database file's mode. No-op for `:memory:`."""
    database = make_url(normalize_database_url(url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
        return
    except FileNotFoundError:
        return  # missing directory: let SQLite report it
    os.close(fd)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and foreign keys, and a private
    (0600) database file."""
    url = normalize_database_url(url)
    if is_sqlite(url):
        private_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # Takes effect only on a new, empty file: lets the pruner give pages back.
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    ping_idle = "pool_pre_ping" not in kwargs
    connect_args = dict(kwargs.pop("connect_args", {}))
    server_settings = dict(connect_args.get("server_settings", {}))
    server_settings.setdefault("plan_cache_mode", PLAN_CACHE_MODE)
    connect_args["server_settings"] = server_settings
    engine = create_async_engine(url, connect_args=connect_args, **kwargs)
    if ping_idle:
        _ping_after_idle(engine)
    return engine


PLAN_CACHE_MODE = "force_custom_plan"
"""PostgreSQL plans each execution of our prepared statements with its parameters.

asyncpg prepares every statement, and after five executions PostgreSQL may switch one to a
generic plan (one for any parameters) when its estimated cost looks no worse. For the hot
path it was worse, and the switch happened in some runs and not others: through the API with
two workers, 878 / 879 jobs/s with generic plans forced (PostgreSQL CPU 0.75-0.78 ms per
job) against 1,108 / 1,188 with custom plans forced (0.51-0.54 ms), and 979-1,363 jobs/s
left to PostgreSQL (`bench.engine_throughput`, 2026-11-30). Planning each time costs less
than that at the ceiling; at moderate load it costs PostgreSQL CPU (0.33 against 0.22-0.24
cores at 200 due jobs/s). It is what a driver without prepared statements gets anyway. A
caller's own `server_settings` may set it otherwise (the background pruner does)."""

PING_AFTER_IDLE_S = 1.0
"""A pooled PostgreSQL connection that sat unused this long is pinged before it is handed
out (a database restart or a dropped socket then costs a reconnect, not an error)."""


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling, but only for connections that were idle.

    SQLAlchemy's `pool_pre_ping` pings on every checkout; on asyncpg a ping is three round
    trips (BEGIN, `;`, ROLLBACK), which under load cost more than the claim it preceded.
    A connection checked in moments ago is as good as one just pinged, so only one idle for
    `PING_AFTER_IDLE_S` is pinged; a failed ping makes the pool connect afresh."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["cronicorn_idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("cronicorn_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"stale pooled connection: {exc}") from exc


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
