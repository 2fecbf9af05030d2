"""The alert dispatcher's SQL: take queued run facts, read what evaluating them needs, write
incidents, and claim due deliveries under a short lock (several API processes may dispatch).

Queued facts are taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer);
a second dispatcher racing for the same job's incident hits the partial unique index
`uq_alerts_open_job_kind` and its batch is retried later, so a job never has two open
incidents of one kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.alerts import AlertKind, AlertRule, DeliveryEvent
from cronicorn.domain.models import RunStatus
from cronicorn.store.tables import UTCDateTime, alerts_t, jobs_t, runs_t
from cronicorn.store.tables import alert_channels_t as channels_t
from cronicorn.store.tables import alert_deliveries_t as deliveries_t
from cronicorn.store.tables import alert_events_t as events_t
from cronicorn.store.tables import alert_rules_t as rules_t

OPEN = "open"
RESOLVED = "resolved"
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    tenant_id: str
    name: str


@dataclass(slots=True)
class OpenIncident:
    id: str
    since: datetime
    occurrences: int


def rule_from_row(row: Any) -> AlertRule:
    ids = row.channel_ids
    return AlertRule(
        failure_threshold=row.failure_threshold,
        on_critical=row.on_critical,
        on_recovery=row.on_recovery,
        on_notify_user=row.on_notify_user,
        on_ai_pause=row.on_ai_pause,
        on_budget=row.on_budget,
        channel_ids=tuple(ids) if ids is not None else None,
    )


HAS_EVENTS = sa.select(events_t.c.id).limit(1)
"""Read-only check before taking the write lock: an idle dispatcher never writes."""
HAS_DUE_DELIVERIES = (
    sa.select(deliveries_t.c.id)
    .where(
        deliveries_t.c.status == "pending",
        deliveries_t.c.next_attempt_at <= sa.bindparam("now", type_=UTCDateTime()),
    )
    .limit(1)
)
LOCK_EVENTS_SQLITE = sa.update(events_t).where(sa.false()).values(job_id=events_t.c.job_id)


async def take_events(conn: AsyncConnection, limit: int) -> list[RowMapping]:
    """The oldest queued facts, locked for this transaction (skipped by other dispatchers)."""
    stmt = sa.select(events_t).order_by(events_t.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    else:
        # SQLite: take the write lock before reading, so two dispatchers cannot read the
        # same facts (the driver begins the transaction only at the first write).
        await conn.execute(LOCK_EVENTS_SQLITE)
    return list((await conn.execute(stmt)).mappings())


async def delete_events(conn: AsyncConnection, ids: Sequence[int]) -> None:
    await conn.execute(sa.delete(events_t).where(events_t.c.id.in_(ids)))


async def load_jobs(conn: AsyncConnection, job_ids: Iterable[str]) -> dict[str, JobInfo]:
    rows = await conn.execute(
        sa.select(jobs_t.c.id, jobs_t.c.tenant_id, jobs_t.c.name).where(
            jobs_t.c.id.in_(list(job_ids))
        )
    )
    return {r.id: JobInfo(r.id, r.tenant_id, r.name) for r in rows}


async def load_rules(
    conn: AsyncConnection, jobs: Iterable[JobInfo]
) -> tuple[dict[str, AlertRule], dict[str, AlertRule]]:
    """(rules by job id, tenant defaults by tenant id)."""
    jobs = list(jobs)
    rows = await conn.execute(
        sa.select(rules_t).where(
            sa.or_(
                rules_t.c.job_id.in_([j.id for j in jobs]),
                sa.and_(
                    rules_t.c.job_id.is_(None),
                    rules_t.c.tenant_id.in_({j.tenant_id for j in jobs}),
                ),
            )
        )
    )
    by_job: dict[str, AlertRule] = {}
    by_tenant: dict[str, AlertRule] = {}
    for row in rows:
        if row.job_id is None:
            by_tenant[row.tenant_id] = rule_from_row(row)
        else:
            by_job[row.job_id] = rule_from_row(row)
    return by_job, by_tenant


async def enabled_channels(
    conn: AsyncConnection, tenant_ids: Iterable[str]
) -> dict[str, list[str]]:
    """Enabled channel ids per tenant, oldest first."""
    rows = await conn.execute(
        sa.select(channels_t.c.id, channels_t.c.tenant_id)
        .where(channels_t.c.tenant_id.in_(list(tenant_ids)), channels_t.c.enabled.is_(True))
        .order_by(channels_t.c.created_at, channels_t.c.id)
    )
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row.tenant_id, []).append(row.id)
    return out


async def open_incidents(
    conn: AsyncConnection, job_ids: Iterable[str]
) -> dict[str, dict[AlertKind, OpenIncident]]:
    rows = await conn.execute(
        sa.select(
            alerts_t.c.id,
            alerts_t.c.job_id,
            alerts_t.c.kind,
            alerts_t.c.since,
            alerts_t.c.occurrences,
        ).where(alerts_t.c.job_id.in_(list(job_ids)), alerts_t.c.status == OPEN)
    )
    out: dict[str, dict[AlertKind, OpenIncident]] = {}
    for row in rows:
        incident = OpenIncident(row.id, row.since, row.occurrences)
        out.setdefault(row.job_id, {})[AlertKind(row.kind)] = incident
    return out


async def failure_streak_start(
    conn: AsyncConnection, job_id: str, until: datetime
) -> datetime | None:
    """When the job's current run of failures began: its first failed run after the last
    completed one."""
    last_ok = (
        sa.select(sa.func.max(runs_t.c.started_at))
        .where(runs_t.c.job_id == job_id, runs_t.c.status == RunStatus.COMPLETED.value)
        .scalar_subquery()
    )
    stmt = sa.select(sa.func.min(runs_t.c.started_at)).where(
        runs_t.c.job_id == job_id,
        runs_t.c.status == RunStatus.FAILED.value,
        runs_t.c.started_at <= until,
        sa.or_(last_ok.is_(None), runs_t.c.started_at > last_ok),
    )
    value: datetime | None = await conn.scalar(stmt)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


async def insert_incident(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(sa.insert(alerts_t).values(values))


async def update_incident(conn: AsyncConnection, alert_id: str, values: dict[str, Any]) -> None:
    await conn.execute(sa.update(alerts_t).where(alerts_t.c.id == alert_id).values(values))


async def insert_deliveries(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(sa.insert(deliveries_t), rows)


# -- deliveries ----------------------------------------------------------------------------

_NOW = sa.bindparam("now", type_=UTCDateTime())


def _claim_deliveries() -> sa.Update:
    due = (
        sa.select(deliveries_t.c.id)
        .where(
            deliveries_t.c.status == PENDING,
            deliveries_t.c.next_attempt_at <= _NOW,
            sa.or_(deliveries_t.c.locked_until.is_(None), deliveries_t.c.locked_until <= _NOW),
        )
        .order_by(deliveries_t.c.next_attempt_at, deliveries_t.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        sa.update(deliveries_t)
        .where(deliveries_t.c.id.in_(due.scalar_subquery()))
        .values(locked_until=sa.bindparam("locked_until", type_=UTCDateTime()))
        .returning(*deliveries_t.c)
    )


CLAIM_DELIVERIES = _claim_deliveries()
"""Due pending deliveries, locked for `locked_until` (a crashed dispatcher's claims free up)."""


async def claim_deliveries(
    conn: AsyncConnection, now: datetime, limit: int, lock_for: timedelta
) -> list[RowMapping]:
    params = {"now": now, "limit": limit, "locked_until": now + lock_for}
    return list((await conn.execute(CLAIM_DELIVERIES, params)).mappings())


async def load_channels(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, RowMapping]:
    rows = await conn.execute(sa.select(channels_t).where(channels_t.c.id.in_(list(ids))))
    return {row["id"]: row for row in rows.mappings()}


async def delivered_since(
    conn: AsyncConnection, channel_id: str, since: datetime
) -> list[datetime]:
    """Delivery times on a channel since `since`, oldest first (for the rate limit)."""
    rows = await conn.execute(
        sa.select(deliveries_t.c.delivered_at)
        .where(deliveries_t.c.channel_id == channel_id, deliveries_t.c.delivered_at >= since)
        .order_by(deliveries_t.c.delivered_at)
    )
    return [row[0] for row in rows]


async def finish_delivery(conn: AsyncConnection, delivery_id: str, values: dict[str, Any]) -> None:
    await conn.execute(
        sa.update(deliveries_t)
        .where(deliveries_t.c.id == delivery_id)
        .values({**values, "locked_until": None})
    )


def delivery_row(
    *,
    delivery_id: str,
    tenant_id: str,
    alert_id: str | None,
    channel_id: str,
    event: DeliveryEvent,
    subject: str,
    text: str,
    payload: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "tenant_id": tenant_id,
        "alert_id": alert_id,
        "channel_id": channel_id,
        "event": event.value,
        "status": PENDING,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": now,
        "locked_until": None,
        "subject": subject,
        "text": text,
        "payload": payload,
        "created_at": now,
        "delivered_at": None,
    }
