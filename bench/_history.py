"""Bulk history for the storage benchmarks: millions of finished runs, with their endpoint
results and summary messages, written with set-based SQL in the real (migrated) schema.

Rows look like the engine's own (`bench.engine_throughput._completion`): one run per due
job (`completed`, every 17th `failed`), one endpoint result per run (`success` 200 /
`failed` 500, 2-byte body) and one `assistant`/`engine` summary message per run, all
belonging to jobs already seeded with `bench._fixtures.seed_jobs` (run `g` belongs to job
`g % jobs`). `share` (0..1) is the fraction of runs that also get their result and message
(deterministic: run `g` does when `g % 1000 < share * 1000`).

PostgreSQL: rows come from `generate_series`; SQLite: from a recursive CTE. By default the
history tables' primary keys, foreign keys and secondary indexes are dropped first and
rebuilt afterwards with their exact definitions read from the catalog (the standard
bulk-load order: far faster than maintaining every index row by row, and the rebuild
re-validates every key), then `VACUUM ANALYZE` (PostgreSQL) or `ANALYZE` (SQLite) runs, as
autovacuum would after a bulk insert. `rebuild=False` keeps everything in place (slower; the
indexes then grow the way they do in production).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

HISTORY_TABLES = ("runs", "endpoint_results", "messages")
SUMMARY = "completed: 1 success (ping 200); next run in 1 h (baseline_interval)"
FAILED_EVERY = 17
CHUNK = 250_000

_RUN_COLUMNS = (
    "id, job_id, worker_id, lease_token, status, due_at, started_at, finished_at, duration_ms,"
    " plan, plan_source, strategy, success_count, failure_count, skipped_count, aborted_count,"
    " escalation_level, schedule, input_tokens, output_tokens, reasoning_tokens,"
    " cached_input_tokens, ai_calls, cost_usd"
)
_RESULT_COLUMNS = (
    "run_id, job_id, endpoint_id, position, status, status_code, attempts, started_at,"
    " duration_ms, request_bytes, response_bytes, truncated, content_type, response_body,"
    " error, error_category"
)
_MESSAGE_COLUMNS = "id, job_id, role, content, source, created_at"
_PLAN = '{"calls": [{"endpoint_id": "ping", "depends_on": []}], "reasoning": "rules: baseline"}'
_SCHEDULE = '{"source": "baseline_interval", "reasoning": "baseline interval"}'


@dataclass(frozen=True)
class _Dialect:
    """The SQL pieces that differ between PostgreSQL and SQLite."""

    source: str
    """A CTE prefix defining `src(g, job_id, endpoint_id, t)`."""
    run_id: str
    message_id: str
    plan: str
    schedule: str
    body: str
    false: str


_PG = _Dialect(
    source=(
        "WITH src AS (SELECT s.g, m.job_id, m.endpoint_id,"
        " CAST(:newest AS timestamptz)"
        " - (s.g - CAST(:first AS bigint)) * CAST(:step AS double precision) * interval '1 second'"
        " AS t FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS s(g)"
        " JOIN bench_jobmap m ON m.idx = s.g % CAST(:jobs AS bigint)) "
    ),
    run_id="md5('run-' || g)::uuid::text",
    message_id="md5('message-' || g || '-' || k)::uuid::text",
    plan=f"'{_PLAN}'::jsonb",
    schedule=f"'{_SCHEDULE}'::jsonb",
    body="'\"ok\"'::jsonb",
    false="false",
)
_SQLITE = _Dialect(
    source=(
        "WITH RECURSIVE seq(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM seq WHERE g + 1 < :hi),"
        " src AS (SELECT seq.g AS g, m.job_id AS job_id, m.endpoint_id AS endpoint_id,"
        " strftime('%Y-%m-%d %H:%M:%S', :newest_epoch - (seq.g - :first) * :step, 'unixepoch')"
        " || '.000000' AS t FROM seq JOIN bench_jobmap m ON m.idx = seq.g % :jobs) "
    ),
    run_id="printf('00000000-0000-4000-8000-%012x', g)",
    message_id="printf('%08x-0000-4000-9000-%012x', k, g)",
    plan=f"'{_PLAN}'",
    schedule=f"'{_SCHEDULE}'",
    body="'\"ok\"'",
    false="0",
)


def _copies(n: int) -> str:
    """A derived table `(k)` with the rows 0 … n-1 (both dialects)."""
    return "(" + " UNION ALL ".join(f"SELECT {k} AS k" for k in range(max(n, 1))) + ") AS copies"


def _statements(d: _Dialect, results_per_run: int, messages_per_run: int) -> tuple[str, str, str]:
    failed = f"g % {FAILED_EVERY} = 0"
    if d is _PG:
        result_t = message_t = "t - k * interval '1 second'"
    else:
        result_t = message_t = (
            "strftime('%Y-%m-%d %H:%M:%S', :newest_epoch - (g - :first) * :step - k,"
            " 'unixepoch') || '.000000'"
        )
    t_end = (
        "t + interval '5 milliseconds'"
        if d is _PG
        else "strftime('%Y-%m-%d %H:%M:%S', :newest_epoch - (g - :first) * :step + 0.005,"
        " 'unixepoch') || '.000000'"
    )
    runs = (
        f"{d.source}INSERT INTO runs ({_RUN_COLUMNS}) SELECT {d.run_id}, job_id, 'bench-fill',"
        f" g / :jobs + 1, CASE WHEN {failed} THEN 'failed' ELSE 'completed' END, t, t, {t_end},"
        f" 5.0, {d.plan}, 'rules', 'sequential', CASE WHEN {failed} THEN 0 ELSE 1 END,"
        f" CASE WHEN {failed} THEN 1 ELSE 0 END, 0, 0, 'none', {d.schedule}, 0, 0, 0, 0, 0, 0"
        " FROM src"
    )
    results = (
        f"{d.source}INSERT INTO endpoint_results ({_RESULT_COLUMNS}) SELECT {d.run_id}, job_id,"
        f" endpoint_id, k, CASE WHEN {failed} THEN 'failed' ELSE 'success' END,"
        f" CASE WHEN {failed} THEN 500 ELSE 200 END, 1, {result_t}, 4.0, 0, 2, {d.false},"
        f" 'text/plain', {d.body}, NULL, CASE WHEN {failed} THEN 'http_5xx' END"
        f" FROM src CROSS JOIN {_copies(results_per_run)} WHERE g % 1000 < :per_mille"
    )
    messages = (
        f"{d.source}INSERT INTO messages ({_MESSAGE_COLUMNS}) SELECT {d.message_id}, job_id,"
        f" 'assistant', '{SUMMARY}', 'engine', {message_t}"
        f" FROM src CROSS JOIN {_copies(messages_per_run)} WHERE g % 1000 < :per_mille"
    )
    return runs, results, messages


@dataclass
class FillReport:
    runs: int = 0
    endpoint_results: int = 0
    messages: int = 0
    insert_s: float = 0.0
    rebuild_s: float = 0.0
    analyze_s: float = 0.0
    total_s: float = 0.0
    rebuild: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "endpoint_results": self.endpoint_results,
            "messages": self.messages,
            "insert_s": round(self.insert_s, 1),
            "rebuild_s": round(self.rebuild_s, 1),
            "analyze_s": round(self.analyze_s, 1),
            "total_s": round(self.total_s, 1),
        }


def _print(line: str) -> None:
    print(line, flush=True)


async def fill_history(
    engine: AsyncEngine,
    *,
    jobs: int,
    count: int,
    newest: datetime,
    span_s: float,
    share: float = 1.0,
    start: int = 0,
    results_per_run: int = 1,
    messages_per_run: int = 1,
    rebuild: bool = True,
    chunk: int = CHUNK,
    progress: Callable[[str], None] = _print,
) -> FillReport:
    """Insert `count` finished runs numbered `start`… (run `g` belongs to seeded job
    `g % jobs`), the newest started at `newest`, each `span_s / count` seconds older than
    the previous; plus `results_per_run` endpoint results (positions 0…, each a second
    older than the last) and `messages_per_run` messages for `share` of them."""
    report = FillReport()
    began = time.monotonic()
    dialect = _PG if engine.dialect.name == "postgresql" else _SQLITE
    runs_sql, results_sql, messages_sql = (
        sa.text(s) for s in _statements(dialect, results_per_run, messages_per_run)
    )
    await _job_map(engine, jobs)
    saved = await _drop_keys(engine) if rebuild else None
    step = span_s / max(count, 1)
    per_mille = round(max(0.0, min(1.0, share)) * 1000)
    for low in range(start, start + count, chunk):
        high = min(low + chunk, start + count)
        params = {
            "lo": low,
            "hi": high,
            "first": start,
            "jobs": jobs,
            "step": step,
            "newest": newest,
            "newest_epoch": newest.timestamp(),
            "per_mille": per_mille,
        }
        async with engine.begin() as conn:
            report.runs += await _inserted(conn, runs_sql, params)
            if per_mille:
                report.endpoint_results += await _inserted(conn, results_sql, params)
                report.messages += await _inserted(conn, messages_sql, params)
        elapsed = time.monotonic() - began
        progress(
            f"  filled {high - start:,}/{count:,} runs"
            f" (+{report.endpoint_results:,} results, +{report.messages:,} messages)"
            f" in {elapsed:.0f} s"
        )
    report.insert_s = time.monotonic() - began
    if saved is not None:
        started = time.monotonic()
        report.rebuild = await _restore_keys(engine, saved, progress)
        report.rebuild_s = time.monotonic() - started
    started = time.monotonic()
    await analyze(engine, vacuum=True)
    report.analyze_s = time.monotonic() - started
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE bench_jobmap"))
    report.total_s = time.monotonic() - began
    progress(f"  fill done: {report.as_dict()}")
    return report


async def _inserted(conn: AsyncConnection, statement: sa.TextClause, params: Any) -> int:
    """Rows inserted by `statement` (SQLite's driver reports -1 for INSERT … SELECT)."""
    count = int((await conn.execute(statement, params)).rowcount)
    if count < 0:
        count = int(await conn.scalar(sa.text("SELECT changes()")) or 0)
    return count


async def _job_map(engine: AsyncEngine, jobs: int) -> None:
    """`bench_jobmap(idx, job_id, endpoint_id)`: seeded job `idx` and its first endpoint
    (the fixture's job ids sort in index order)."""
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE IF EXISTS bench_jobmap"))
        await conn.execute(
            sa.text(
                "CREATE TABLE bench_jobmap AS SELECT idx, job_id, endpoint_id FROM ("
                " SELECT row_number() OVER (ORDER BY j.id) - 1 AS idx, j.id AS job_id,"
                " min(e.id) AS endpoint_id FROM jobs j JOIN endpoints e ON e.job_id = j.id"
                " GROUP BY j.id) AS numbered WHERE idx < :jobs"
            ),
            {"jobs": jobs},
        )
        await conn.execute(sa.text("CREATE INDEX ix_bench_jobmap_idx ON bench_jobmap (idx)"))
        mapped = await conn.scalar(sa.text("SELECT count(*) FROM bench_jobmap"))
    if mapped != jobs:
        raise RuntimeError(f"expected {jobs} seeded jobs, found {mapped}")


@dataclass(frozen=True)
class _SavedKeys:
    constraints: list[tuple[str, str, str, str]]
    """(table, name, definition, type 'p'/'f'), PostgreSQL only."""
    indexes: list[tuple[str, str]]
    """(name, CREATE INDEX statement)."""


async def _drop_keys(engine: AsyncEngine) -> _SavedKeys:
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            saved = await _pg_keys(conn)
            for table, name, _, _ in sorted(saved.constraints, key=lambda c: c[3] != "f"):
                await conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        else:
            rows = await conn.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                    " AND sql IS NOT NULL AND tbl_name IN ('runs', 'endpoint_results', 'messages')"
                )
            )
            saved = _SavedKeys([], [(r[0], r[1]) for r in rows])
        for name, _ in saved.indexes:
            await conn.execute(sa.text(f'DROP INDEX "{name}"'))
    return saved


async def _pg_keys(conn: AsyncConnection) -> _SavedKeys:
    tables = "('runs'::regclass, 'endpoint_results'::regclass, 'messages'::regclass)"
    constraints = await conn.execute(
        sa.text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text"
            f" FROM pg_constraint WHERE contype IN ('p', 'f') AND (conrelid IN {tables}"
            f" OR confrelid IN {tables})"
        )
    )
    indexes = await conn.execute(
        sa.text(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid"
            f" WHERE x.indrelid IN {tables}"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        )
    )
    return _SavedKeys(
        [(r[0], r[1], r[2], r[3]) for r in constraints], [(r[0], r[1]) for r in indexes]
    )


async def _restore_keys(
    engine: AsyncEngine, saved: _SavedKeys, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Primary keys, then indexes, then foreign keys (which need the keys they reference)."""
    steps: list[tuple[str, str]] = []
    for table, name, definition, kind in saved.constraints:
        if kind == "p":
            steps.append((name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    steps += saved.indexes
    for table, name, definition, kind in saved.constraints:
        if kind == "f":
            steps.append((name, f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    done: list[dict[str, Any]] = []
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        for name, statement in steps:
            started = time.monotonic()
            await conn.execute(sa.text(statement))
            done.append({"name": name, "s": round(time.monotonic() - started, 1)})
            progress(f"  rebuilt {name} in {done[-1]['s']} s")
    return done


async def analyze(engine: AsyncEngine, vacuum: bool = False) -> None:
    """`[VACUUM] ANALYZE` the history tables (PostgreSQL), `ANALYZE` (SQLite)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
            for table in (*HISTORY_TABLES, "jobs"):
                await auto.execute(sa.text(f"{verb} {table}"))
        else:
            await conn.execute(sa.text("ANALYZE"))
            await conn.commit()


async def table_bytes(engine: AsyncEngine) -> dict[str, int]:
    """Total size (heap + indexes + TOAST) of each history table, PostgreSQL only."""
    if engine.dialect.name != "postgresql":
        return {}
    async with engine.connect() as conn:
        return {
            table: int(await conn.scalar(sa.text(f"SELECT pg_total_relation_size('{table}')")) or 0)
            for table in HISTORY_TABLES
        }
