"""Row locks that both databases honour, for check-then-insert rules (quotas).

PostgreSQL takes a row lock with `SELECT … FOR UPDATE`; SQLite ignores `FOR UPDATE`, and its
driver only opens a transaction at the first write, so a count read before an insert is not
protected at all. There, the lock is a no-op `UPDATE` of the row: it opens the transaction
and takes SQLite's single write lock before anything is counted, so concurrent creators
queue behind it (in this process and in any other one sharing the file).
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


async def lock_row(session: AsyncSession, id_col: InstrumentedAttribute[str], row_id: str) -> bool:
    """Lock the row whose `id_col` is `row_id` until the session's transaction ends.

    Returns False when no such row exists. Call it first in the transaction, before the
    counts it protects.
    """
    if session.get_bind().dialect.name == "sqlite":
        return await sqlite_write_lock(session, id_col, row_id)
    found = await session.scalar(sa.select(id_col).where(id_col == row_id).with_for_update())
    return found is not None


async def sqlite_write_lock(
    session: AsyncSession, id_col: InstrumentedAttribute[str], row_id: str
) -> bool:
    """On SQLite, take the write lock now with a no-op `UPDATE` of the row (True if it
    exists); elsewhere do nothing (False). For callers whose own `SELECT … FOR UPDATE`
    already locks the row on PostgreSQL."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    table = cast(sa.Table, id_col.class_.__table__)
    # Every column that would otherwise get an `onupdate` value keeps its own.
    unchanged = {col: col for col in table.c if col.onupdate is not None}
    unchanged[table.c[id_col.key]] = table.c[id_col.key]
    result = await session.execute(sa.update(table).where(id_col == row_id).values(unchanged))
    return bool(getattr(result, "rowcount", 0))
