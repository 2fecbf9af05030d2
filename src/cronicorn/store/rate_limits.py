"""Fixed-window counters in the database, so every API replica shares one limit.

`hit` is one statement: `INSERT … ON CONFLICT (bucket, window_start) DO UPDATE SET count =
count + n RETURNING count` — atomic on PostgreSQL and on SQLite (≥ 3.35), with no
read-modify-write race between replicas. The first hit of each new window of a bucket
deletes that bucket's finished windows; `prune` drops every finished window (buckets that
went quiet), which the throttle calls about once per window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.tables import rate_limits_t


def _upsert(dialect: str) -> Any:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(rate_limits_t).values(
        bucket=sa.bindparam("bucket"),
        window_start=sa.bindparam("window_start"),
        count=sa.bindparam("amount"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[rate_limits_t.c.bucket, rate_limits_t.c.window_start],
        set_={"count": rate_limits_t.c.count + stmt.excluded.count},
    ).returning(rate_limits_t.c.count)


NO_SYNC_COMMIT = sa.text("SET LOCAL synchronous_commit TO OFF")
PRUNE_BUCKET = sa.delete(rate_limits_t).where(
    rate_limits_t.c.bucket == sa.bindparam("bucket"),
    rate_limits_t.c.window_start < sa.bindparam("window_start"),
)
PRUNE = sa.delete(rate_limits_t).where(rate_limits_t.c.window_start < sa.bindparam("before"))
READ = sa.select(rate_limits_t.c.count).where(
    rate_limits_t.c.bucket == sa.bindparam("bucket"),
    rate_limits_t.c.window_start == sa.bindparam("window_start"),
)


class RateLimitStore:
    """Counters per (bucket, window) on one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._upsert = _upsert(engine.dialect.name)
        self._postgres = engine.dialect.name == "postgresql"

    async def hit(self, bucket: str, window_start: datetime, amount: int = 1) -> int:
        """Add `amount` to the bucket's counter for this window; the new count."""
        params = {"bucket": bucket, "window_start": window_start, "amount": amount}
        async with self._engine.begin() as conn:
            if self._postgres:  # a counter needs no flush to disk before the answer
                await conn.execute(NO_SYNC_COMMIT)
            count = int((await conn.execute(self._upsert, params)).scalar_one())
            if count == amount:  # first hit of a new window: drop the bucket's old ones
                await conn.execute(PRUNE_BUCKET, params)
        return count

    async def prune(self, before: datetime) -> int:
        """Delete the counters of windows that started before `before`."""
        async with self._engine.begin() as conn:
            result = await conn.execute(PRUNE, {"before": before})
        return int(getattr(result, "rowcount", 0) or 0)

    async def count(self, bucket: str, window_start: datetime) -> int:
        async with self._engine.connect() as conn:
            value = await conn.scalar(READ, {"bucket": bucket, "window_start": window_start})
        return int(value or 0)
