"""Wake-ups when jobs change, so idle engines claim new or "run-now" jobs at once.

PostgreSQL: `notify_jobs_changed` issues `NOTIFY cronicorn_jobs` inside the caller's
transaction (PostgreSQL delivers it on commit, never for a rolled-back change), and
`JobChangeListener` LISTENs on a dedicated asyncpg connection.

SQLite has no notifications, so in one process (`cronicorn run`) the same call wakes the
registered in-process waiters after the session commits; other processes fall back to the
backend's short polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cronicorn.store.db import normalize_database_url

CHANNEL = "cronicorn_jobs"
log = logging.getLogger(__name__)

_waiters: dict[int, tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = {}
_next_id = 0


def register_local_waker(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (on the current event loop) whenever jobs change in this process.
    Returns the function that unregisters it."""
    global _next_id
    _next_id += 1
    key = _next_id
    _waiters[key] = (asyncio.get_running_loop(), callback)

    def unregister() -> None:
        _waiters.pop(key, None)

    return unregister


def wake_local_waiters() -> None:
    """Thread-safe: schedule every registered callback on its own loop."""
    for loop, callback in list(_waiters.values()):
        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(callback)


async def notify_jobs_changed(session: AsyncSession | AsyncConnection) -> None:
    """Call after creating/updating a job or "run now", inside the write's transaction.

    The notification takes effect when that transaction commits. With an `AsyncConnection`
    the in-process wake-up fires immediately, so call it after committing in that case.
    """
    conn = await session.connection() if isinstance(session, AsyncSession) else session
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))
    if isinstance(session, AsyncSession):
        event.listen(session.sync_session, "after_commit", _after_commit, once=True)
    else:
        wake_local_waiters()


def _after_commit(_session: Any) -> None:
    wake_local_waiters()


def asyncpg_dsn(url: str) -> str:
    """A plain `postgresql://` DSN for asyncpg from any URL form we accept."""
    parsed = make_url(normalize_database_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class JobChangeListener:
    """LISTEN on `cronicorn_jobs` with its own connection; calls `on_change` per NOTIFY.

    If the connection breaks the listener just stops; callers keep a polling fallback.
    """

    def __init__(self, url: str, on_change: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_change = on_change
        self._conn: Any = None

    @property
    def active(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(CHANNEL, self._notified)

    def _notified(self, *_args: Any) -> None:
        self._on_change()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.remove_listener(CHANNEL, self._notified)
            await conn.close()
