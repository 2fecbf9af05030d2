"""Batched loading of job contexts for a claim: three queries for the whole batch.

Endpoints, the last N messages of each job and the last K results of each endpoint are read
with `job_id IN (…)` and a window function (`row_number() OVER (PARTITION BY …)`, available
on SQLite ≥ 3.25 and PostgreSQL), so a batch of 50 jobs costs the same round trips as one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.models import EndpointSpec, JobContext, Message, PastResult
from cronicorn.errors import ConfigError
from cronicorn.store import mapping
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint, EndpointResult
from cronicorn.store.tables import Message as MessageRow

endpoints_t = cast(sa.Table, Endpoint.__table__)
messages_t = cast(sa.Table, MessageRow.__table__)
results_t = cast(sa.Table, EndpointResult.__table__)


async def load_endpoint_rows(
    conn: AsyncConnection, job_ids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    """Endpoint rows (secrets still encrypted) grouped by job, in creation order."""
    rows = await conn.execute(
        sa.select(endpoints_t)
        .where(endpoints_t.c.job_id.in_(job_ids))
        .order_by(endpoints_t.c.job_id, endpoints_t.c.created_at, endpoints_t.c.id)
    )
    out: dict[str, list[RowMapping]] = defaultdict(list)
    for row in rows.mappings():
        out[row["job_id"]].append(row)
    return out


async def load_messages(
    conn: AsyncConnection, job_ids: Sequence[str], per_job: int
) -> dict[str, list[Message]]:
    """The newest `per_job` messages of each job, returned oldest first."""
    out: dict[str, list[Message]] = defaultdict(list)
    if per_job <= 0:
        return out
    rn = (
        sa.func.row_number()
        .over(
            partition_by=messages_t.c.job_id,
            order_by=(messages_t.c.created_at.desc(), messages_t.c.id.desc()),
        )
        .label("rn")
    )
    inner = sa.select(messages_t, rn).where(messages_t.c.job_id.in_(job_ids)).subquery()
    rows = await conn.execute(
        sa.select(inner)
        .where(inner.c.rn <= per_job)
        .order_by(inner.c.job_id, inner.c.created_at, inner.c.id)
    )
    for row in rows.mappings():
        out[row["job_id"]].append(mapping.message(row))
    return out


async def load_recent_results(
    conn: AsyncConnection, job_ids: Sequence[str], per_endpoint: int, excerpt_chars: int
) -> dict[str, list[PastResult]]:
    """The newest `per_endpoint` results of each endpoint of each job, oldest first."""
    out: dict[str, list[PastResult]] = defaultdict(list)
    if per_endpoint <= 0:
        return out
    rn = (
        sa.func.row_number()
        .over(
            partition_by=results_t.c.endpoint_id,
            order_by=(results_t.c.started_at.desc(), results_t.c.id.desc()),
        )
        .label("rn")
    )
    inner = sa.select(results_t, rn).where(results_t.c.job_id.in_(job_ids)).subquery()
    rows = await conn.execute(
        sa.select(inner)
        .where(inner.c.rn <= per_endpoint)
        .order_by(inner.c.job_id, inner.c.endpoint_id, inner.c.started_at, inner.c.id)
    )
    for row in rows.mappings():
        out[row["job_id"]].append(mapping.past_result(row, excerpt_chars))
    return out


def build_context(
    job_row: RowMapping,
    endpoint_rows: Sequence[RowMapping],
    messages: Sequence[Message],
    results: Sequence[PastResult],
    box: SecretBox,
    today: str,
) -> JobContext:
    """Decrypts the job's secrets; raises ConfigError if they cannot be decrypted."""
    endpoints: tuple[EndpointSpec, ...] = tuple(
        mapping.endpoint_spec(row, box) for row in endpoint_rows
    )
    return JobContext(
        job=mapping.job_snapshot(job_row, box, today),
        endpoints=endpoints,
        messages=tuple(messages),
        recent_results=tuple(results),
    )


async def load_contexts(
    conn: AsyncConnection,
    job_rows: Sequence[RowMapping],
    box: SecretBox,
    *,
    today: str,
    history_limit: int,
    results_per_endpoint: int,
    excerpt_chars: int,
) -> tuple[dict[str, JobContext], dict[str, str]]:
    """Contexts keyed by job id, for job rows already read (by the claim's RETURNING).

    Returns `(contexts, failures)`: a job whose secrets cannot be decrypted (wrong
    CRONICORN_SECRET_KEY) is reported in `failures` with the reason instead of failing
    the whole batch.
    """
    ids = [row["id"] for row in job_rows]
    contexts: dict[str, JobContext] = {}
    failures: dict[str, str] = {}
    if not ids:
        return contexts, failures
    endpoints = await load_endpoint_rows(conn, ids)
    messages = await load_messages(conn, ids, history_limit)
    results = await load_recent_results(conn, ids, results_per_endpoint, excerpt_chars)
    for row in job_rows:
        job_id = row["id"]
        try:
            contexts[job_id] = build_context(
                row,
                endpoints.get(job_id, []),
                messages.get(job_id, []),
                results.get(job_id, []),
                box,
                today,
            )
        except ConfigError as exc:
            failures[job_id] = str(exc)
    return contexts, failures
