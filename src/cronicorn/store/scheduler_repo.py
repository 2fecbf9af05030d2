"""The engine-facing store: claim due jobs under a lease, and fenced writes for claimed jobs.

Every write for a claimed job starts with its fence (see `cronicorn.store.fencing`): the
first statement of its transaction takes the row locks (PostgreSQL) or the write lock
(SQLite) and checks `lease_token`, `lease_owner` and that the lease's run is still running.
Expiry is not part of the fence: a lease past its expiry whose token is still the newest
(nobody claimed the job since) may still write, so a finished run is never thrown away for
time alone. A lease that fails its fence gets `LeaseLostError` and changes nothing. A
completion sent again after it was stored (its response lost) is recognised and answered
as written. Completions are written in batches (`complete_runs`): one transaction for
many leases, where a lost lease only drops its own writes.

Times: every method takes an optional `now` (timezone-aware UTC) so tests and callers with
their own clock are deterministic; it defaults to the wall clock of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cronicorn.domain.alerts import MAX_ERROR_CHARS, RunFacts, run_facts
from cronicorn.domain.governor import fallback_next_run
from cronicorn.domain.models import (
    ClaimedJob,
    ErrorPhase,
    Escalation,
    Heartbeat,
    JobErrorRecord,
    Lease,
    NextRun,
    PlanDecision,
    RunCompletion,
    RunStatus,
    TokenUsage,
)
from cronicorn.errors import LeaseLostError
from cronicorn.store import lease_admin, mapping, workers
from cronicorn.store.claiming import (
    ABORT_PREVIOUS_RUNS,
    CLAIM_LEASES,
    INSERT_RUNS,
    LEASE_AND_START_PG,
    LEASE_DUE,
    run_row,
)
from cronicorn.store.claiming import due_condition as due_condition  # public: service.stats
from cronicorn.store.context import load_contexts
from cronicorn.store.fencing import (
    EXTEND_FENCE,
    TOUCH_FENCE,
    FinishedRun,
    HeldLease,
    fence_params,
    fenced_update,
    lock_leases,
)
from cronicorn.store.run_writes import (
    JOB_PLAN_TOKENS,
    RUN_PLAN,
    Writes,
    completion_writes,
    error_row,
    job_finish_row,
    job_release_row,
    job_token_params,
    ms_between,
    plan_params,
    run_token_values,
    with_alert_event,
)
from cronicorn.store.secrets import SecretBox


def _finished(check: FinishedRun) -> LeaseLostError:
    lease = check.lease
    detail = f"run {lease.run_id} is already {check.status}"
    return LeaseLostError(lease.job_id, lease.token, detail)


LOST_CLAIM = "the claim failed after its lease may have been taken"


def _not_started(exc: BaseException, failed: str = "the job's context could not be loaded") -> str:
    """Why runs a claim started are given back before their contexts were delivered."""
    if isinstance(exc, asyncio.CancelledError):
        # The engine cancels its claim when it stops; the API does when the engine hangs up.
        return "not started: the engine stopped or disconnected during the claim"
    return f"not started: {failed} ({type(exc).__name__})"


def utc_now(now: datetime | None = None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass timezone-aware UTC times")
    return now.astimezone(UTC)


class SchedulerRepository:
    """Claim/lease/fencing operations on one database (SQLite or PostgreSQL).

    `history_limit` messages and `results_per_endpoint` past results per endpoint are loaded
    into each claimed job's context; past response bodies are cut to `excerpt_chars`.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        secret_box: SecretBox,
        *,
        history_limit: int = 50,
        results_per_endpoint: int = 5,
        excerpt_chars: int = mapping.EXCERPT_CHARS,
    ) -> None:
        self.engine = engine
        self.secret_box = secret_box
        self.history_limit = history_limit
        self.results_per_endpoint = results_per_endpoint
        self.excerpt_chars = excerpt_chars
        self._postgres = engine.dialect.name == "postgresql"
        self._sqlite_writes = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    def _serialised(self) -> contextlib.AbstractAsyncContextManager[object]:
        """SQLite has one write lock per database; two of our own write transactions
        competing for it would make one sleep in SQLite's busy handler (1, 2, 5, 10 … ms).
        Queuing them here instead hands the lock over without sleeping."""
        return self._sqlite_writes or contextlib.nullcontext()

    # -- claim ---------------------------------------------------------------------------

    async def claim_due_jobs(
        self,
        worker_id: str,
        limit: int,
        lease_ms: int,
        now: datetime | None = None,
        *,
        ahead_ms: int = 0,
        history: bool = True,
    ) -> list[ClaimedJob]:
        """Lease up to `limit` due jobs, oldest due first, and start a run for each.

        With `ahead_ms` > 0 a job counts as due up to `ahead_ms` before its due time (a
        claim ahead: the engine starts it at its `due_at`, so the claim's own latency is
        off the job's critical path). Pause and lease are still judged at `now`. With
        `history` False the contexts carry no past messages or results (a planner that
        reads neither), and their two reads are skipped.

        The lease is one atomic `UPDATE … WHERE id IN (SELECT … ORDER BY next_run_at LIMIT n
        FOR UPDATE SKIP LOCKED) RETURNING …`; on PostgreSQL the runs are aborted and started
        in the same statement (`LEASE_AND_START_PG`, no transaction round trips); on SQLite
        (no row locks) the lease and the runs' two statements run in one transaction under
        the database's single write lock. Contexts are then read in four batched queries.
        """
        now = utc_now(now)
        if limit <= 0:
            return []
        expires = now + timedelta(milliseconds=lease_ms)
        horizon = now + timedelta(milliseconds=max(0, ahead_ms))
        params = {
            "now": now,
            "horizon": horizon,
            "limit": limit,
            "worker": worker_id,
            "expires": expires,
        }
        async with self.engine.connect() as conn:
            try:
                if self._postgres:
                    # PostgreSQL: one atomic statement, outside any transaction (no BEGIN
                    # or COMMIT round trips); the reads below run the same way.
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    rows = await self._lease_and_start(conn, params)
                    run_ids = {row["id"]: row["run_id"] for row in rows}
                else:
                    async with self._serialised(), conn.begin():
                        rows = await self._lease_due_rows(conn, params)
                        run_ids = await self._start_runs(conn, rows, worker_id, now) if rows else {}
            except BaseException as exc:
                # Cancelled or cut off while leasing: the lease may have been committed
                # with its answer lost. Give back whatever this claim took.
                await self._release_lost_claim(
                    worker_id, expires, now, _not_started(exc, LOST_CLAIM)
                )
                raise
            if not rows:
                return []
            # Committed: the reads below hold no write lock (same connection, no checkout).
            try:
                contexts, failures = await load_contexts(
                    conn,
                    rows,
                    self.secret_box,
                    today=now.date().isoformat(),
                    history_limit=self.history_limit if history else 0,
                    results_per_endpoint=self.results_per_endpoint if history else 0,
                    excerpt_chars=self.excerpt_chars,
                )
            except BaseException as exc:
                reason = _not_started(exc)
                await self._release_quietly(rows, run_ids, worker_id, expires, now, reason)
                raise
        claimed: list[ClaimedJob] = []
        for row in rows:
            lease = Lease(row["id"], run_ids[row["id"]], worker_id, row["lease_token"], expires)
            if row["id"] in failures:
                await self._fail_unloadable(lease, row, failures[row["id"]], now)
                continue
            claimed.append(ClaimedJob(lease, contexts[row["id"]], row["next_run_at"]))
        return claimed

    async def _lease_due_rows(
        self, conn: AsyncConnection, params: Mapping[str, object]
    ) -> list[RowMapping]:
        rows = list((await conn.execute(LEASE_DUE, params)).mappings())
        rows.sort(key=lambda r: (r["next_run_at"], r["id"]))
        return rows

    async def _lease_and_start(
        self, conn: AsyncConnection, params: Mapping[str, object]
    ) -> list[RowMapping]:
        """PostgreSQL: lease, abort previous holders' runs and start runs in one statement."""
        rows = list((await conn.execute(LEASE_AND_START_PG, params)).mappings())
        rows.sort(key=lambda r: (r["next_run_at"], r["id"]))
        return rows

    async def _start_runs(
        self,
        conn: AsyncConnection,
        rows: Sequence[RowMapping],
        worker_id: str,
        now: datetime,
    ) -> dict[str, str]:
        """Insert a `running` run per claimed job; a previous holder's run is now aborted."""
        await conn.execute(
            ABORT_PREVIOUS_RUNS, {"job_ids": [row["id"] for row in rows], "now": now}
        )
        run_ids = {row["id"]: str(uuid.uuid4()) for row in rows}
        await conn.execute(
            INSERT_RUNS, [run_row(row, run_ids[row["id"]], worker_id, now) for row in rows]
        )
        return run_ids

    async def _release_lost_claim(
        self, worker_id: str, expires: datetime, now: datetime, reason: str
    ) -> None:
        """Best effort, on a connection of its own and shielded from a second cancellation:
        find the leases this claim took (`CLAIM_LEASES`) and give them back, their runs
        aborted with `reason`. Nothing is found when the lease did not commit."""

        async def release() -> None:
            params = {"worker": worker_id, "expires": expires}
            async with self.engine.connect() as conn:
                found = list((await conn.execute(CLAIM_LEASES, params)).mappings())
            run_ids = {row["id"]: row["run_id"] for row in found}
            await self._release_quietly(found, run_ids, worker_id, expires, now, reason)

        # The caller re-raises the original error; a failed look-up just lets them expire.
        with contextlib.suppress(Exception):
            await asyncio.shield(release())

    async def _release_quietly(
        self,
        rows: Sequence[RowMapping],
        run_ids: Mapping[str, str],
        worker_id: str,
        expires: datetime,
        now: datetime,
        reason: str,
    ) -> None:
        """Best effort: give back leases whose context was never delivered (their runs are
        aborted with `reason`; `next_run_at` is unchanged)."""
        for row in rows:
            lease = Lease(row["id"], run_ids[row["id"]], worker_id, row["lease_token"], expires)
            # The caller re-raises the original error; a failed release just expires.
            with contextlib.suppress(Exception):
                await self.release(lease, now=now, reason=reason)

    async def _fail_unloadable(
        self, lease: Lease, row: RowMapping, reason: str, now: datetime
    ) -> None:
        """A job whose secrets cannot be decrypted fails like any failed run: its error is
        recorded once and the governor's fallback (with backoff) sets its next run."""
        failures = row["consecutive_failures"] + 1
        schedule = mapping.job_snapshot(row, None, now.date().isoformat())
        await self.fail_run(
            lease,
            JobErrorRecord(ErrorPhase.CLAIM, "context_unavailable", reason),
            fallback_next_run(schedule, now, consecutive_failures=failures),
            failures,
            now=now,
        )

    # -- fenced writes -------------------------------------------------------------------

    async def _write_fenced(
        self,
        leases: Sequence[Lease],
        now: datetime,
        build: Callable[[int, HeldLease], Writes],
        replayed: Callable[[int, FinishedRun], bool] | None = None,
    ) -> list[LeaseLostError | None]:
        """One transaction: lock and check every lease's fence, then write — in one
        `executemany` per statement — only what `build` returns for the leases that hold.
        A lease whose run is already finished counts as written when `replayed` says the
        stored outcome is this very write (sent again after its response was lost)."""
        async with self._serialised(), self.engine.begin() as conn:
            checks = await lock_leases(conn, leases, now)
            writes = Writes()
            out: list[LeaseLostError | None] = []
            for index, check in enumerate(checks):
                if isinstance(check, HeldLease):
                    writes.merge(build(index, check))
                    out.append(None)
                elif isinstance(check, FinishedRun):
                    replay = replayed is not None and replayed(index, check)
                    out.append(None if replay else _finished(check))
                else:
                    out.append(check)
            await writes.execute(conn)
        return out

    async def extend_lease(self, lease: Lease, lease_ms: int, now: datetime | None = None) -> Lease:
        """Renew the lease to `now + lease_ms`; LeaseLostError if it was taken over or
        given up. A lease past its expiry that nobody claimed since is renewed."""
        now = utc_now(now)
        expires = now + timedelta(milliseconds=lease_ms)
        async with self._serialised(), self.engine.begin() as conn:
            await fenced_update(conn, EXTEND_FENCE, lease, now, f_expires=expires)
        return dataclasses.replace(lease, expires_at=expires)

    async def record_plan(
        self, lease: Lease, decision: PlanDecision, now: datetime | None = None
    ) -> None:
        """Store the phase-1 plan (and its token cost so far) on the running run."""
        now = utc_now(now)
        params = {**fence_params(lease, now, f_run=lease.run_id), **plan_params(decision)}
        job_tokens = {
            "p_id": lease.job_id,
            "p_run_id": lease.run_id,
            **job_token_params(decision.usage, now),
        }
        async with self._serialised(), self.engine.begin() as conn:
            await fenced_update(conn, TOUCH_FENCE, lease, now)
            # Before RUN_PLAN: the increment subtracts what the run already holds.
            await conn.execute(JOB_PLAN_TOKENS, job_tokens)
            if (await conn.execute(RUN_PLAN, params)).rowcount != 1:
                raise LeaseLostError(
                    lease.job_id, lease.token, f"run {lease.run_id} is not this lease's running run"
                )

    async def complete_runs(
        self, items: Sequence[tuple[Lease, RunCompletion]], now: datetime | None = None
    ) -> list[LeaseLostError | None]:
        """Complete many runs in ONE transaction (group commit); one entry per item, in
        order: None if written, the LeaseLostError if that lease was fenced out.

        Each written item gets the run, its results, summary message, schedule, tokens and
        errors, and its lease released; a fenced-out item changes nothing and does not
        affect the others. Any other error (the database,
        a constraint) rolls back the whole batch and is raised."""
        now = utc_now(now)
        writes = [completion_writes(lease, completion, now) for lease, completion in items]
        facts = [run_facts(completion) for _, completion in items]

        def replayed(index: int, finished: FinishedRun) -> bool:
            completion = items[index][1]
            return (
                finished.status == completion.status.value
                and finished.finished_at == completion.finished_at
            )

        return await self._write_fenced(
            [lease for lease, _ in items],
            now,
            lambda i, held: with_alert_event(writes[i], held.lease, facts[i], held.alert_open, now),
            replayed,
        )

    async def fail_run(
        self,
        lease: Lease,
        error: JobErrorRecord,
        next_run: NextRun,
        consecutive_failures: int,
        now: datetime | None = None,
        *,
        usage: TokenUsage | None = None,
        ai_calls: int = 0,
    ) -> None:
        """Mark the run failed, record the error once, set the fallback next run and
        release the lease, in one fenced transaction. `usage` (tokens already spent by the
        run) is added to the job's counters."""
        now = utc_now(now)
        usage = usage or TokenUsage()
        schedule = mapping.schedule_to_json(
            next_run, f"fallback after {error.phase.value} error ({error.code})", None
        )
        facts = RunFacts(
            status=RunStatus.FAILED,
            escalation=Escalation.NONE,
            consecutive_failures=consecutive_failures,
            finished_at=now,
            error=f"{error.phase.value}: {error.message}"[:MAX_ERROR_CHARS],
        )

        def build(_: int, held: HeldLease) -> Writes:
            writes = Writes(errors=[error_row(lease, error, now)])
            writes.finished_jobs.append(
                job_finish_row(
                    lease.job_id,
                    lease.run_id,
                    next_run_at=next_run.at,
                    last_run_at=now,
                    consecutive_failures=consecutive_failures,
                    schedule=schedule,
                    usage=usage,
                    now=now,
                )
            )
            writes.update_run(
                lease.run_id,
                {
                    "status": RunStatus.FAILED.value,
                    "finished_at": now,
                    "duration_ms": ms_between(held.started_at, now),
                    "schedule": schedule,
                    "error": mapping.scrub(error.message),
                    **run_token_values(usage, ai_calls),
                },
            )
            return with_alert_event(writes, lease, facts, held.alert_open, now)

        [lost] = await self._write_fenced([lease], now, build)
        if lost is not None:
            raise lost

    async def release(
        self, lease: Lease, now: datetime | None = None, *, reason: str = "released"
    ) -> None:
        """Give the job back without completing it: run aborted, next_run_at unchanged."""
        now = utc_now(now)

        def build(_: int, held: HeldLease) -> Writes:
            writes = Writes(released_jobs=[job_release_row(lease.job_id, now)])
            writes.update_run(
                lease.run_id,
                {
                    "status": RunStatus.ABORTED.value,
                    "finished_at": now,
                    "duration_ms": ms_between(held.started_at, now),
                    "error": reason,
                },
            )
            return writes

        [lost] = await self._write_fenced([lease], now, build)
        if lost is not None:
            raise lost

    # -- idle loop, admin, workers -------------------------------------------------------

    async def next_due_at(self, now: datetime | None = None) -> datetime | None:
        """When the earliest active job becomes claimable (may be in the past), else None."""
        return await lease_admin.next_due_at(self.engine, utc_now(now))

    async def force_unlock(
        self,
        job_ids: Sequence[str] | None = None,
        stale_only: bool = True,
        now: datetime | None = None,
    ) -> list[str]:
        """Admin: release expired (or, with `stale_only=False`, all) leases, optionally only
        of `job_ids`; their running runs become aborted. Returns the released job ids."""
        return await lease_admin.force_unlock(self.engine, job_ids, stale_only, utc_now(now))

    async def record_heartbeat(
        self, worker_id: str, info: Heartbeat, now: datetime | None = None
    ) -> None:
        await workers.record_heartbeat(self.engine, worker_id, info, utc_now(now))

    async def list_workers(self, limit: int | None = None) -> list[workers.WorkerInfo]:
        return await workers.list_workers(self.engine, limit)

    async def mark_worker_stopped(self, worker_id: str, now: datetime | None = None) -> None:
        await workers.mark_worker_stopped(self.engine, worker_id, utc_now(now))
