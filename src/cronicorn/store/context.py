"""Batched loading of job contexts for a claim: four queries for the whole batch.

Endpoints and the tenants' signing keys are read with `… IN (…)`; the last N messages of
each job and the last K results of each endpoint with per-key `ORDER BY … DESC LIMIT n`
(each served by an index): on PostgreSQL one `unnest(:keys) CROSS JOIN LATERAL` statement,
elsewhere one `UNION ALL` of such branches per chunk of keys. A batch costs the same round
trips as one job and a long history costs nothing extra.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.models import EndpointSpec, JobContext, Message, PastResult
from cronicorn.errors import ConfigError
from cronicorn.store import mapping
from cronicorn.store.secrets import SecretBox
from cronicorn.store.signing_keys import decrypt_signing_secret, signing_ciphertexts
from cronicorn.store.tables import endpoints_t, messages_t, results_t

BRANCHES_PER_QUERY = 100
"""Keys per UNION ALL statement (SQLite allows at most 500 compound SELECT terms)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


ENDPOINTS_OF_JOBS = (
    sa.select(endpoints_t)
    .where(endpoints_t.c.job_id.in_(sa.bindparam("job_ids", expanding=True)))
    .order_by(endpoints_t.c.job_id, endpoints_t.c.created_at, endpoints_t.c.id)
)


async def load_endpoint_rows(
    conn: AsyncConnection, job_ids: Sequence[str]
) -> dict[str, list[RowMapping]]:
    """Endpoint rows (secrets still encrypted) grouped by job, in creation order."""
    rows = await conn.execute(ENDPOINTS_OF_JOBS, {"job_ids": list(job_ids)})
    out: dict[str, list[RowMapping]] = defaultdict(list)
    for row in rows.mappings():
        out[row["job_id"]].append(row)
    return out


def _chunks(keys: Sequence[str], size: int = BRANCHES_PER_QUERY) -> list[Sequence[str]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]


@functools.cache
def newest_per_key_statement(
    table: sa.Table, key: str, order: tuple[str, ...], per_key: int, keys: int
) -> sa.Executable:
    """`UNION ALL` of `keys` branches `WHERE key = :k<i> ORDER BY … DESC LIMIT per_key`,
    built once per (table, batch size): building it per claim cost more CPU than running it."""
    branches = [
        sa.select(table)
        .where(table.c[key] == sa.bindparam(f"k{i}"))
        .order_by(*(table.c[col].desc() for col in order))
        .limit(per_key)
        .subquery()
        .select()
        for i in range(keys)
    ]
    return branches[0] if keys == 1 else sa.union_all(*branches)


@functools.cache
def newest_per_key_lateral(
    table: sa.Table, key: str, order: tuple[str, ...], per_key: int
) -> sa.TextualSelect:
    """PostgreSQL: one statement for any number of keys, `unnest(:keys)` joined LATERAL to
    the same index-backed `ORDER BY … DESC LIMIT n` per key — no per-batch-size variants
    to prepare and plan."""
    columns = ", ".join(f"t.{c.name}" for c in table.c)
    newest = ", ".join(f"{col} DESC" for col in order)
    sql = (
        f"SELECT {columns} FROM unnest(CAST(:keys AS text[])) AS k(key) "
        f"CROSS JOIN LATERAL (SELECT * FROM {table.name} WHERE {key} = k.key "
        f"ORDER BY {newest} LIMIT {int(per_key)}) AS t"
    )
    return sa.text(sql).columns(*table.c)


async def _newest_per_key(
    conn: AsyncConnection,
    table: sa.Table,
    key: str,
    keys: Sequence[str],
    order: tuple[str, ...],
    per_key: int,
) -> list[RowMapping]:
    """The newest `per_key` rows for each key: index-backed `ORDER BY … DESC LIMIT n` per
    key (LATERAL on PostgreSQL; elsewhere one `UNION ALL` of such branches per chunk of
    keys). Unlike a window function over all rows, the cost does not grow with a job's
    history."""
    if conn.dialect.name == "postgresql":
        lateral = newest_per_key_lateral(table, key, order, per_key)
        unique = list(dict.fromkeys(keys))
        return list((await conn.execute(lateral, {"keys": unique})).mappings())
    out: dict[Any, RowMapping] = {}
    for chunk in _chunks(keys):
        size = _bucket(len(chunk))
        stmt = newest_per_key_statement(table, key, order, per_key, size)
        params = {f"k{i}": chunk[min(i, len(chunk) - 1)] for i in range(size)}
        for row in (await conn.execute(stmt, params)).mappings():
            out[row["id"]] = row  # padding repeats the last key: drop its duplicate rows
    return list(out.values())


def _bucket(n: int) -> int:
    """Round a key count up to a power of two (capped at a full chunk), so a handful of
    statements serve every batch size: compiling a 50-branch UNION costs milliseconds,
    and a different size per claim meant compiling on most claims."""
    size = 1
    while size < n:
        size *= 2
    return min(size, BRANCHES_PER_QUERY)


async def load_messages(
    conn: AsyncConnection, job_ids: Sequence[str], per_job: int
) -> dict[str, list[Message]]:
    """The newest `per_job` messages of each job, returned oldest first."""
    out: dict[str, list[Message]] = defaultdict(list)
    if per_job <= 0 or not job_ids:
        return out
    rows = await _newest_per_key(conn, messages_t, "job_id", job_ids, ("created_at", "id"), per_job)
    for row in sorted(rows, key=lambda r: (r["job_id"], r["created_at"], r["id"])):
        out[row["job_id"]].append(mapping.message(row))
    return out


async def load_recent_results(
    conn: AsyncConnection,
    endpoint_ids: Sequence[str],
    per_endpoint: int,
    excerpt_chars: int,
    views: Mapping[str, Any] | None = None,
) -> dict[str, list[PastResult]]:
    """The newest `per_endpoint` results of each endpoint, oldest first, keyed by job;
    `views` (endpoint id → `ai_view`) adds the view values of each result."""
    views = views or {}
    out: dict[str, list[PastResult]] = defaultdict(list)
    if per_endpoint <= 0 or not endpoint_ids:
        return out
    rows = await _newest_per_key(
        conn, results_t, "endpoint_id", endpoint_ids, ("started_at", "id"), per_endpoint
    )
    rows.sort(key=lambda r: (r["endpoint_id"], r["started_at"] or EPOCH, r["id"]))
    for row in rows:
        view = views.get(row["endpoint_id"])
        out[row["job_id"]].append(mapping.past_result(row, excerpt_chars, view))
    return out


def build_context(
    job_row: RowMapping,
    endpoint_rows: Sequence[RowMapping],
    messages: Sequence[Message],
    results: Sequence[PastResult],
    box: SecretBox,
    today: str,
    signing_secret: str | None = None,
) -> JobContext:
    """Decrypts the job's secrets; raises ConfigError if they cannot be decrypted."""
    endpoints: tuple[EndpointSpec, ...] = tuple(
        mapping.endpoint_spec(row, box) for row in endpoint_rows
    )
    return JobContext(
        job=mapping.job_snapshot(job_row, box, today, signing_secret),
        endpoints=endpoints,
        messages=tuple(messages),
        recent_results=tuple(results),
        ai_decision=mapping.decision_from_json(job_row["ai_decision"]),
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
    endpoint_ids = [row["id"] for rows in endpoints.values() for row in rows]
    views = {row["id"]: row["ai_view"] for rows in endpoints.values() for row in rows}
    results = await load_recent_results(
        conn, endpoint_ids, results_per_endpoint, excerpt_chars, views
    )
    signing = await signing_ciphertexts(conn, [row["tenant_id"] for row in job_rows], box)
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
                decrypt_signing_secret(box, signing.get(row["tenant_id"])),
            )
        except ConfigError as exc:
            failures[job_id] = str(exc)
    return contexts, failures
