"""The plain-asyncpg floor of `bench.engine_throughput`: the store's claim and batched
completion on PostgreSQL, written by hand in SQL and run straight on asyncpg.

No SQLAlchemy and no domain objects: a pool of asyncpg connections, each statement prepared
once per connection (asyncpg's statement cache) and batches sent with `executemany`. The
statements are those the store runs (compiled from `cronicorn.store` with the PostgreSQL
dialect and copied here as text), with two differences in form only: `IN (:a, :b, …)`
lists are `= ANY($n)` arrays (PostgreSQL plans `IN` lists as `= ANY` anyway), and the
store's constant parameters (`'active'`, `+ 1`, `'open'`) are literals.

Per claimed batch, like `SchedulerRepository.claim_due_jobs` (`store/claiming.py`,
`store/context.py`):

- one transaction: the lease `UPDATE … WHERE id IN (SELECT … ORDER BY next_run_at, id LIMIT
  n FOR UPDATE SKIP LOCKED) RETURNING` every job column and the tenant's spend (three scalar
  subqueries), the abort of the jobs' previous running runs, the run INSERTs;
- then on the same connection the context reads of a rules-planner claim (the engine asks
  for no past messages or results, `ClaimRequest.history`): endpoints and the tenants'
  signing keys (a missing key is created once, in its own transaction).

The store makes the first three one autocommit statement on PostgreSQL (data-modifying
CTEs, `store/claiming.py` `LEASE_AND_START_PG`); written that way here, as a prepared
statement, it measured slower than the three statements in a transaction (PostgreSQL's
generic plan for the prepared CTE), so the floor keeps the faster form.

Per completed batch, like `complete_runs` (`store/fencing.py` `lock_leases`,
`store/run_writes.py` `Writes.execute`), one transaction: the fence (`SELECT jobs ⟕ runs …
FOR UPDATE OF jobs`, checked per lease), the job finish update (schedule, lease release,
token and cost increments), the run update, the endpoint result INSERTs and the summary
message INSERTs — one `executemany` each.

Left out, because it is no database work: building `ClaimedJob`/`RunCompletion` objects,
decrypting secrets, and SQLAlchemy's own round trips (its driver wraps the context reads
in BEGIN … ROLLBACK, and the engine pings each connection it checks out).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronicorn.store.secrets import SecretBox
from cronicorn.store.signing_keys import new_signing_secret

SUMMARY = "completed: 1 success (ping 200); next run in 1 h (baseline_interval)"

_JOB_COLUMNS = (
    "id, tenant_id, name, definition, status, cron, timezone, interval_ms, min_interval_ms, "
    "max_interval_ms, next_run_at, last_run_at, consecutive_failures, paused_until, "
    "lease_owner, lease_token, lease_expires_at, input_tokens, output_tokens, "
    "reasoning_tokens, cached_input_tokens, daily_token_budget, run_retention_days, "
    "max_runs_per_job, tokens_today, tokens_day, last_schedule, default_headers, ai_mode, "
    "ai_decision, replan_requested_at, hint_interval_ms, hint_next_run_at, hint_expires_at, "
    "hint_reason, hint_set_at, cost_usd_total, cost_usd_today, cost_day, cost_usd_month, "
    "cost_month, created_at, updated_at"
)
RETURNING_JOBS = ", ".join(f"jobs.{c.strip()}" for c in _JOB_COLUMNS.split(","))

LEASE_DUE = f"""
UPDATE jobs SET lease_owner = $1::varchar, lease_token = jobs.lease_token + 1,
    lease_expires_at = $2::timestamptz, updated_at = jobs.updated_at
WHERE jobs.id IN (
    SELECT jobs.id FROM jobs
    WHERE jobs.status = 'active' AND jobs.next_run_at IS NOT NULL
      AND jobs.next_run_at <= $3::timestamptz
      AND (jobs.paused_until IS NULL OR jobs.paused_until <= $3::timestamptz)
      AND (jobs.lease_expires_at IS NULL OR jobs.lease_expires_at <= $3::timestamptz)
    ORDER BY jobs.next_run_at, jobs.id
    LIMIT $4::integer FOR UPDATE SKIP LOCKED)
RETURNING {RETURNING_JOBS},
    (SELECT tenants.cost_usd_month FROM tenants WHERE tenants.id = jobs.tenant_id)
        AS tenant_cost_usd_month,
    (SELECT tenants.cost_month FROM tenants WHERE tenants.id = jobs.tenant_id)
        AS tenant_cost_month,
    (SELECT tenants.monthly_budget_usd FROM tenants WHERE tenants.id = jobs.tenant_id)
        AS tenant_monthly_budget_usd
"""
"""$1 worker, $2 lease expiry, $3 now, $4 limit."""

ABORT_PREVIOUS_RUNS = """
UPDATE runs SET status = 'aborted', finished_at = $2::timestamptz,
    error = 'lease expired before the run finished'
WHERE runs.job_id = ANY($1::varchar[]) AND runs.status = 'running'
"""

INSERT_RUN = """
INSERT INTO runs (id, job_id, worker_id, lease_token, status, due_at, started_at,
    success_count, failure_count, skipped_count, aborted_count, escalation_level,
    input_tokens, output_tokens, reasoning_tokens, cached_input_tokens, ai_calls, cost_usd)
VALUES ($1::varchar, $2::varchar, $3::varchar, $4::bigint, $5::varchar, $6::timestamptz,
    $7::timestamptz, $8::integer, $9::integer, $10::integer, $11::integer, $12::varchar,
    $13::bigint, $14::bigint, $15::bigint, $16::bigint, $17::integer, $18::float8)
"""
"""Every column SQLAlchemy sends: the given ones and the columns' Python-side defaults."""

ENDPOINTS_OF_JOBS = """
SELECT endpoints.id, endpoints.job_id, endpoints.name, endpoints.description, endpoints.url,
    endpoints.method, endpoints.headers, endpoints.body, endpoints.request_schema,
    endpoints.timeout_ms, endpoints.max_response_bytes, endpoints.fire_and_forget,
    endpoints.bearer_token, endpoints.url_secret, endpoints.ai_view, endpoints.condition,
    endpoints.created_at, endpoints.updated_at
FROM endpoints WHERE endpoints.job_id = ANY($1::varchar[])
ORDER BY endpoints.job_id, endpoints.created_at, endpoints.id
"""

SIGNING_KEYS = """
SELECT signing_keys.tenant_id, signing_keys.secret, signing_keys.revoked_at
FROM signing_keys WHERE signing_keys.tenant_id = ANY($1::varchar[])
"""

INSERT_SIGNING_KEY = """
INSERT INTO signing_keys (tenant_id, key_id, secret, created_at, revealed_at, revoked_at)
VALUES ($1::varchar, $2::varchar, $3::varchar, $4::timestamptz, NULL, NULL)
ON CONFLICT (tenant_id) DO NOTHING
"""

LOCK_FENCES = """
SELECT jobs.id, jobs.lease_token, jobs.lease_owner, jobs.lease_expires_at,
    runs.id AS run_id, runs.job_id AS run_job_id, runs.lease_token AS run_token,
    runs.status AS run_status, runs.started_at AS run_started_at,
    (EXISTS (SELECT * FROM alerts WHERE alerts.job_id = jobs.id AND alerts.status = 'open'))
        OR (EXISTS (SELECT * FROM alert_events WHERE alert_events.job_id = jobs.id))
        AS alert_open,
    runs.finished_at AS run_finished_at
FROM jobs LEFT OUTER JOIN runs ON runs.job_id = jobs.id AND runs.id = ANY($2::varchar[])
WHERE jobs.id = ANY($1::varchar[])
ORDER BY jobs.id FOR UPDATE OF jobs
"""
"""$1 job ids, $2 run ids (both sorted)."""


def _token_delta(column: str) -> str:
    """`store/run_writes.py` `_token_increments`: the run's new total minus what the run
    already recorded ($2 is the run id)."""
    param = {"input_tokens": 8, "output_tokens": 9, "reasoning_tokens": 10}.get(column, 11)
    return (
        f"(${param}::bigint - coalesce((SELECT runs.{column} FROM runs "
        f"WHERE runs.id = $2::varchar), 0))"
    )


JOB_FINISH = f"""
UPDATE jobs SET
    status = CASE WHEN ($13::boolean AND jobs.status = 'active') THEN 'paused'
        ELSE jobs.status END,
    next_run_at = $3::timestamptz, last_run_at = $4::timestamptz,
    consecutive_failures = $5::integer, lease_owner = NULL, lease_expires_at = NULL,
    input_tokens = jobs.input_tokens + {_token_delta("input_tokens")},
    output_tokens = jobs.output_tokens + {_token_delta("output_tokens")},
    reasoning_tokens = jobs.reasoning_tokens + {_token_delta("reasoning_tokens")},
    cached_input_tokens = jobs.cached_input_tokens + {_token_delta("cached_input_tokens")},
    tokens_today = CASE WHEN (jobs.tokens_day = $12::varchar)
        THEN jobs.tokens_today + {_token_delta("input_tokens")} + {_token_delta("output_tokens")}
        ELSE {_token_delta("input_tokens")} + {_token_delta("output_tokens")} END,
    tokens_day = $12::varchar,
    last_schedule = $6::jsonb,
    ai_decision = CASE WHEN $14::boolean THEN jobs.ai_decision ELSE $15::jsonb END,
    cost_usd_total = jobs.cost_usd_total + $16::float8,
    cost_usd_today = CASE WHEN (jobs.cost_day = $12::varchar)
        THEN jobs.cost_usd_today + $16::float8 ELSE $16::float8 END,
    cost_day = $12::varchar,
    cost_usd_month = CASE WHEN (jobs.cost_month = $17::varchar)
        THEN jobs.cost_usd_month + $16::float8 ELSE $16::float8 END,
    cost_month = $17::varchar,
    updated_at = $7::timestamptz
WHERE jobs.id = $1::varchar
"""
"""$1 job, $2 run, $3 next run, $4 last run, $5 failures, $6 last schedule, $7 now,
$8 to $11 run token totals, $12 today, $13 pause, $14 keep decision, $15 decision, $16 cost,
$17 month."""

RUN_FINISH = """
UPDATE runs SET status = $1::varchar, started_at = $2::timestamptz,
    finished_at = $3::timestamptz, duration_ms = $4::float8, plan = $5::jsonb,
    plan_source = $6::varchar, strategy = $7::varchar, success_count = $8::integer,
    failure_count = $9::integer, skipped_count = $10::integer, aborted_count = $11::integer,
    escalation_level = $12::varchar, schedule = $13::jsonb, input_tokens = $14::bigint,
    output_tokens = $15::bigint, reasoning_tokens = $16::bigint,
    cached_input_tokens = $17::bigint, ai_calls = $18::integer, ai_trigger = $19::varchar,
    cost_usd = $20::float8, error = $21::varchar
WHERE runs.id = $22::varchar
"""

INSERT_RESULT = """
INSERT INTO endpoint_results (run_id, job_id, endpoint_id, position, status, status_code,
    attempts, started_at, duration_ms, request_bytes, response_bytes, truncated,
    content_type, response_body, error, error_category)
VALUES ($1::varchar, $2::varchar, $3::varchar, $4::integer, $5::varchar, $6::integer,
    $7::integer, $8::timestamptz, $9::float8, $10::bigint, $11::bigint, $12::boolean,
    $13::varchar, $14::jsonb, $15::varchar, $16::varchar)
"""

INSERT_MESSAGE = """
INSERT INTO messages (id, job_id, role, content, source, created_at)
VALUES ($1::varchar, $2::varchar, $3::varchar, $4::varchar, $5::varchar, $6::timestamptz)
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What the completion needs of a claimed job."""

    job_id: str
    run_id: str
    token: int
    endpoint_id: str


class AsyncpgFloor:
    """Claims and completions on one asyncpg pool (see the module docstring)."""

    def __init__(self, pool: Any, box: SecretBox, worker_id: str = "floor") -> None:
        self.pool = pool
        self.box = box
        self.worker_id = worker_id

    async def claim(self, limit: int, lease_ms: int) -> list[Claimed]:
        now = datetime.now(UTC)
        expires = now + timedelta(milliseconds=lease_ms)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(LEASE_DUE, self.worker_id, expires, now, limit)
                if not rows:
                    return []
                rows.sort(key=lambda r: (r["next_run_at"], r["id"]))
                job_ids = [row["id"] for row in rows]
                await conn.execute(ABORT_PREVIOUS_RUNS, job_ids, now)
                run_ids = {job: str(uuid.uuid4()) for job in job_ids}
                await conn.executemany(
                    INSERT_RUN,
                    [
                        (
                            run_ids[r["id"]],
                            r["id"],
                            self.worker_id,
                            r["lease_token"],
                            "running",
                            r["next_run_at"],
                            now,
                            0,
                            0,
                            0,
                            0,
                            "none",
                            0,
                            0,
                            0,
                            0,
                            0,
                            0.0,
                        )
                        for r in rows
                    ],
                )
            # Committed: the context reads hold no locks. A rules-planner claim reads no past
            # messages or results (`ClaimRequest.history`).
            endpoints = await conn.fetch(ENDPOINTS_OF_JOBS, job_ids)
            tenants = sorted({row["tenant_id"] for row in rows})
            keys = await conn.fetch(SIGNING_KEYS, tenants)
        missing = set(tenants) - {key["tenant_id"] for key in keys}
        if missing:
            await self._create_signing_keys(sorted(missing), now)
        first_endpoint: dict[str, str] = {}
        for endpoint in endpoints:
            first_endpoint.setdefault(endpoint["job_id"], endpoint["id"])
        return [
            Claimed(r["id"], run_ids[r["id"]], r["lease_token"], first_endpoint[r["id"]])
            for r in rows
        ]

    async def _create_signing_keys(self, tenants: list[str], now: datetime) -> None:
        """As `store/signing_keys.py`: a tenant's first claim creates its key."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                INSERT_SIGNING_KEY,
                [
                    (t, str(uuid.uuid4()), self.box.encrypt(new_signing_secret()), now)
                    for t in tenants
                ],
            )
            await conn.fetch(SIGNING_KEYS, tenants)

    async def complete(self, claimed: list[Claimed]) -> None:
        """One transaction for the batch: the fence, then one `executemany` per statement.
        Raises if a lease fails its fence (nothing else holds these jobs)."""
        now = datetime.now(UTC)
        next_run = now + timedelta(hours=1)
        at = next_run.isoformat()
        last_schedule = json.dumps(
            {
                "next_run_at": at,
                "source": "baseline_interval",
                "reasoning": "baseline interval",
                "confidence": None,
            }
        )
        schedule = json.dumps(
            {
                "proposed_next_run_at": None,
                "next_run_at": at,
                "source": "baseline_interval",
                "reasoning": "baseline interval",
                "confidence": None,
                "recommended_actions": [],
            }
        )
        today, month = now.date().isoformat(), now.date().isoformat()[:7]
        jobs, runs, results, messages = [], [], [], []
        for c in claimed:
            jobs.append(
                (
                    c.job_id,
                    c.run_id,
                    next_run,
                    now,
                    0,
                    last_schedule,
                    now,
                    0,
                    0,
                    0,
                    0,
                    today,
                    False,
                    False,
                    "null",
                    0.0,
                    month,
                )
            )
            plan = json.dumps(
                {
                    "endpoints_to_call": [
                        {
                            "endpoint_id": c.endpoint_id,
                            "parameters": {},
                            "headers": {},
                            "priority": 0,
                            "depends_on": [],
                            "critical": False,
                        }
                    ],
                    "execution_strategy": "sequential",
                    "concurrency_limit": None,
                    "preliminary_next_run_at": None,
                    "reasoning": "rules: baseline",
                    "confidence": 1.0,
                }
            )
            runs.append(
                (
                    "completed",
                    now,
                    now,
                    0.0,
                    plan,
                    "rules",
                    "sequential",
                    1,
                    0,
                    0,
                    0,
                    "none",
                    schedule,
                    0,
                    0,
                    0,
                    0,
                    0,
                    None,
                    0.0,
                    None,
                    c.run_id,
                )
            )
            results.append(
                (
                    c.run_id,
                    c.job_id,
                    c.endpoint_id,
                    0,
                    "success",
                    200,
                    1,
                    now,
                    1.0,
                    0,
                    2,
                    False,
                    "text/plain",
                    '"ok"',
                    None,
                    None,
                )
            )
            messages.append((str(uuid.uuid4()), c.job_id, "assistant", SUMMARY, "engine", now))
        async with self.pool.acquire() as conn, conn.transaction():
            fences = await conn.fetch(
                LOCK_FENCES,
                sorted({c.job_id for c in claimed}),
                sorted({c.run_id for c in claimed}),
            )
            self._check(claimed, fences)
            await conn.executemany(JOB_FINISH, jobs)
            await conn.executemany(RUN_FINISH, runs)
            await conn.executemany(INSERT_RESULT, results)
            await conn.executemany(INSERT_MESSAGE, messages)

    def _check(self, claimed: list[Claimed], fences: list[Any]) -> None:
        """`store/fencing.py` `lock_leases`: the job's token and owner, and the lease's own
        run still running under the same token."""
        by_run = {row["run_id"]: row for row in fences if row["run_id"] is not None}
        for c in claimed:
            row = by_run.get(c.run_id)
            if (
                row is None
                or row["id"] != c.job_id
                or row["lease_token"] != c.token
                or row["lease_owner"] != self.worker_id
                or row["run_job_id"] != c.job_id
                or row["run_token"] != c.token
                or row["run_status"] != "running"
            ):
                raise RuntimeError(f"floor_asyncpg: the lease on job {c.job_id} was lost")


async def exactly_once(conn: Any, jobs: int) -> dict[str, Any]:
    """After the measurement: every finished job has exactly one run, completed, with one
    result and one summary message; raises if not. `all_jobs_once`: all `jobs` did."""
    row = await conn.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM runs) AS runs,
            (SELECT count(DISTINCT job_id) FROM runs) AS jobs_with_runs,
            (SELECT count(*) FROM runs WHERE status <> 'completed') AS not_completed,
            (SELECT count(*) FROM jobs WHERE last_run_at IS NOT NULL AND lease_owner IS NULL)
                AS finished_jobs,
            (SELECT count(*) FROM endpoint_results) AS results,
            (SELECT count(*) FROM messages) AS messages
        """
    )
    check = dict(row)
    counts = {check[k] for k in ("runs", "jobs_with_runs", "finished_jobs", "results", "messages")}
    if len(counts) != 1 or check["not_completed"] != 0:
        raise RuntimeError(f"floor_asyncpg: a job did not finish exactly once: {check}")
    return {**check, "all_jobs_once": check["runs"] == jobs}
