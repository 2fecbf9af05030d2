"""Engine worker heartbeats, so `status` can list live workers from any machine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import Heartbeat
from cronicorn.store.tables import workers_t


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    last_cycle_at: datetime | None
    stopped_at: datetime | None
    stats: dict[str, Any] = field(default_factory=dict)


def heartbeat_values(info: Heartbeat) -> dict[str, Any]:
    """The row values of a heartbeat: `running_jobs` and `stopped` are shown with the stats;
    fields not reported (None) keep their stored value."""
    stats = {**info.stats, "running_jobs": info.running_jobs, "stopped": info.stopped}
    # Stats are shown, not computed on: anything not JSON-native is stored as text.
    values: dict[str, Any] = {"stats": json.loads(json.dumps(stats, default=str))}
    if info.host is not None:
        values["host"] = info.host[:255]
    if info.pid is not None:
        values["pid"] = info.pid
    if info.started_at is not None:
        values["started_at"] = info.started_at
    if info.last_cycle_at is not None:
        values["last_cycle_at"] = info.last_cycle_at
    return values


async def record_heartbeat(
    engine: AsyncEngine, worker_id: str, info: Heartbeat, now: datetime
) -> None:
    """Upsert the worker's row; a heartbeat also clears `stopped_at` (the worker is alive)."""
    values = {**heartbeat_values(info), "last_heartbeat_at": now, "stopped_at": None}
    row = {"id": worker_id, "started_at": now, **values}
    stmt: Any
    if engine.dialect.name == "postgresql":
        stmt = postgresql.insert(workers_t).values(row)
    else:
        stmt = sqlite.insert(workers_t).values(row)
    stmt = stmt.on_conflict_do_update(index_elements=[workers_t.c.id], set_=values)
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def mark_worker_stopped(engine: AsyncEngine, worker_id: str, now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(workers_t).where(workers_t.c.id == worker_id).values(stopped_at=now)
        )


async def list_workers(engine: AsyncEngine, limit: int | None = None) -> list[WorkerInfo]:
    """Known workers (at most `limit`), most recent heartbeat first."""
    stmt = sa.select(workers_t).order_by(workers_t.c.last_heartbeat_at.desc(), workers_t.c.id)
    async with engine.connect() as conn:
        rows = await conn.execute(stmt.limit(limit) if limit is not None else stmt)
        return [
            WorkerInfo(
                id=r["id"],
                host=r["host"],
                pid=r["pid"],
                started_at=r["started_at"],
                last_heartbeat_at=r["last_heartbeat_at"],
                last_cycle_at=r["last_cycle_at"],
                stopped_at=r["stopped_at"],
                stats=dict(r["stats"] or {}),
            )
            for r in rows.mappings()
        ]
