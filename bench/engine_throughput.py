"""Engine throughput: jobs/s and endpoint calls/s with 5,000 jobs due at once.

Rules planner, one GET endpoint per job on a local zero-latency server (own process).
Measured in one run, each on a fresh database:

- floor_sqlite / floor_postgres: the same database work as the engine does it now — claim
  batches (without history, as a rules-planner engine claims) and batched completions
  (`SchedulerRepository.complete_runs`, one per claimed batch; no separate `record_plan`,
  which the engine only does for AI plans) — directly on
  the database (no planner, no executor, no HTTP, no API): the floor through the store's
  own SQLAlchemy code;
- floor_asyncpg: the same claims and completions on PostgreSQL in plain asyncpg — the
  store's statements written out as SQL text (`bench._asyncpg_floor`), prepared once per
  connection, batches sent with `executemany`, no SQLAlchemy while the clock runs; it
  checks afterwards that every finished job ran exactly once;
- sqlite_inprocess_1w: one in-process engine on SQLite (`LocalSchedulerBackend`);
- postgres_api_1w / postgres_api_2w: `cronicorn serve` on PostgreSQL and 1 or 2 engine
  worker processes talking to it (`ApiSchedulerBackend`).

The clock starts when one UPDATE makes every job due (with a wake-up NOTIFY) and stops at
the last run's `finished_at`; a measurement stops after `--timeout` s (default 40) so the
whole benchmark stays under 5 minutes on a slow machine — the backlog is still saturated
then, and jobs/s counts the runs finished in the window. Floors run one claim at a time
(up to 50 jobs, `--batch`) and complete each claimed batch in its own task, up to 100 jobs
in flight (`--job-concurrency`). Ratios are engine / floor on the same database, and each
PostgreSQL figure / floor_asyncpg (`…_vs_floor_asyncpg`). CPU milliseconds per finished job
come from /proc by process group: the bench process itself for the floors (`bench`), the
API and the workers through the API, and every PostgreSQL process on the machine.

    .venv/bin/python -m bench.engine_throughput [--jobs 5000] [--quick] [--skip-postgres]
        [--only floor_postgres,floor_asyncpg,…]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

from bench._asyncpg_floor import AsyncpgFloor, Claimed, exactly_once
from bench._fixtures import (
    BenchDatabase,
    EndpointServer,
    api_process,
    asyncpg_dsn,
    bench_database,
    cpu_seconds,
    create_engine_key,
    engine_config,
    engine_workers,
    machine_load,
    make_all_due,
    quiet_logs,
    seed_jobs,
    wait_finished,
    wait_workers,
)
from bench.common import write_results
from cronicorn.domain.models import (
    ClaimedJob,
    EndpointResult,
    EndpointStatus,
    Escalation,
    NextRun,
    Plan,
    PlannedCall,
    PlanSource,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)
from cronicorn.store.db import create_engine
from cronicorn.store.scheduler_repo import SchedulerRepository

TARGETS = {"postgres_api_2w": 1_000.0, "sqlite_inprocess_1w": 500.0}
LEASE_MS = 300_000
T = TypeVar("T")


def far_future(_: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=1)


def _figures(
    jobs: int, failed: int, calls: int, started: datetime, ended: datetime | None, due: int
) -> dict[str, Any]:
    elapsed = max(1e-9, ((ended or datetime.now(UTC)) - started).total_seconds())
    return {
        "jobs": jobs,
        "all_due_jobs_done": jobs >= due,
        "failed_runs": failed,
        "elapsed_s": round(elapsed, 3),
        "jobs_per_s": round(jobs / elapsed, 1),
        "endpoint_calls_per_s": round(calls / elapsed, 1),
    }


# -- the floor: the same database work, no engine ---------------------------------------


def _completion(job: ClaimedJob, now: datetime) -> RunCompletion:
    endpoint = job.context.endpoints[0].id
    plan = Plan(calls=(PlannedCall(endpoint_id=endpoint),), reasoning="rules: baseline")
    result = EndpointResult(
        endpoint_id=endpoint,
        status=EndpointStatus.SUCCESS,
        status_code=200,
        attempts=1,
        started_at=now,
        duration_ms=1.0,
        response_bytes=2,
        content_type="text/plain",
        response_body="ok",
    )
    completion = RunCompletion(
        status=RunStatus.COMPLETED,
        started_at=now,
        finished_at=now,
        plan=plan,
        plan_source=PlanSource.RULES,
        results=(result,),
        escalation=Escalation.NONE,
        next_run=NextRun(now + timedelta(hours=1), ScheduleSource.BASELINE_INTERVAL),
        schedule_reasoning="baseline interval",
        schedule_confidence=None,
        recommended_actions=(),
        usage=TokenUsage(),
        ai_calls=0,
        summary="completed: 1 success (ping 200); next run in 1 h (baseline_interval)",
    )
    return completion


async def _floor_batch(repo: SchedulerRepository, claimed: list[ClaimedJob]) -> None:
    """One group commit for a claimed batch, as the engine's WriteBatcher does under load."""
    now = datetime.now(UTC)
    lost = await repo.complete_runs([(job.lease, _completion(job, now)) for job in claimed])
    if any(error is not None for error in lost):
        raise RuntimeError("floor: a lease was lost")


async def _drive(
    claim: Callable[[int], Coroutine[Any, Any, list[T]]],
    complete: Callable[[list[T]], Coroutine[Any, Any, None]],
    batch: int,
    concurrency: int,
    window_s: float,
) -> None:
    """Claims (serialised, up to the free slots, `batch` at most) and one `complete` per
    claimed batch, up to `concurrency` jobs in flight: the engine's database traffic without
    the engine. No new claims after `window_s`; returns when every claimed batch is done."""
    running: dict[asyncio.Task[None], int] = {}
    failures: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        running.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            failures.append(cast(BaseException, task.exception()))

    deadline = time.monotonic() + window_s
    while not failures:
        in_flight = sum(running.values())
        free = concurrency - in_flight if time.monotonic() < deadline else 0
        claimed = await claim(min(free, batch)) if free > 0 else []
        if claimed:
            task = asyncio.create_task(complete(claimed))
            running[task] = len(claimed)
            task.add_done_callback(finished)
        if not claimed and not running:
            break
        if not claimed or in_flight + len(claimed) >= concurrency:
            await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
    if failures:  # a failed batch fails the measurement
        await asyncio.gather(*running, return_exceptions=True)
        raise failures[0]


async def measure_floor(
    db: BenchDatabase, jobs: int, batch: int, concurrency: int, window_s: float
) -> dict[str, Any]:
    """`_drive` with `SchedulerRepository.claim_due_jobs` and `complete_runs`."""
    engine = create_engine(db.url)
    repo = SchedulerRepository(engine, db.secret_box)

    async def claim(limit: int) -> list[ClaimedJob]:
        return await repo.claim_due_jobs("floor", limit, LEASE_MS, history=False)

    try:
        await seed_jobs(
            engine, jobs, due=far_future, endpoint_url=lambda i: f"http://127.0.0.1:9/j/{i}"
        )
        roots = {"bench": [os.getpid()]}
        cpu_before = cpu_seconds(roots)
        started = await make_all_due(engine)
        await _drive(claim, partial(_floor_batch, repo), batch, concurrency, window_s)
        cpu_after = cpu_seconds(roots)
        done, failed, last = await wait_finished(engine, jobs, 5)
        cpu_used = _cpu_per_job(cpu_before, cpu_after, done, postgres=db.kind == "postgres")
        return {**_figures(done, failed, done, started, last, jobs), **cpu_used}
    finally:
        await engine.dispose()


async def measure_floor_asyncpg(
    db: BenchDatabase, jobs: int, batch: int, concurrency: int, window_s: float
) -> dict[str, Any]:
    """`_drive` with the store's claim and completion SQL written out for plain asyncpg
    (`bench._asyncpg_floor`): no SQLAlchemy while the clock runs (seeding, the start and
    the final count use it, outside the timed part)."""
    import asyncpg

    engine = create_engine(db.url)
    try:
        await seed_jobs(
            engine, jobs, due=far_future, endpoint_url=lambda i: f"http://127.0.0.1:9/j/{i}"
        )
        # Planned per execution: after five runs of a prepared statement PostgreSQL may
        # switch to a generic plan, and for the floor's `= ANY($n)` array statements that
        # cost three times the PostgreSQL CPU (1.56-1.69 against 0.46-0.52 ms per job with
        # plan_cache_mode forced either way, measured). It switched in some runs and not in
        # others, so the floor swung between ~1,100 and ~2,900 jobs/s; the floor is meant
        # to be the best these statements can do.
        pool = await asyncpg.create_pool(
            asyncpg_dsn(db.url),
            min_size=4,
            max_size=10,
            server_settings={"plan_cache_mode": "force_custom_plan"},
        )
        try:
            floor = AsyncpgFloor(pool, db.secret_box)

            async def claim(limit: int) -> list[Claimed]:
                return await floor.claim(limit, LEASE_MS)

            roots = {"bench": [os.getpid()]}
            cpu_before = cpu_seconds(roots)
            started = await make_all_due(engine)
            await _drive(claim, floor.complete, batch, concurrency, window_s)
            cpu_after = cpu_seconds(roots)
            async with pool.acquire() as conn:
                check = await exactly_once(conn, jobs)
        finally:
            await pool.close()
        done, failed, last = await wait_finished(engine, jobs, 5)
        cpu_used = _cpu_per_job(cpu_before, cpu_after, done)
        return {**_figures(done, failed, done, started, last, jobs), **cpu_used, "check": check}
    finally:
        await engine.dispose()


# -- the engine ---------------------------------------------------------------------------


async def measure_inprocess(
    db: BenchDatabase, jobs: int, server: EndpointServer, config: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    from cronicorn.engine.factory import create_scheduling_engine
    from cronicorn.store.local_backend import LocalSchedulerBackend

    engine = create_engine(db.url)
    await seed_jobs(engine, jobs, due=far_future, endpoint_url=server.url)
    backend = LocalSchedulerBackend(engine, db.secret_box)
    scheduler = create_scheduling_engine(config, backend=backend)
    try:
        await scheduler.start()
        await asyncio.sleep(0.5)  # first (empty) cycle done; now idling in a long-poll
        server.reset()
        started = await make_all_due(engine)
        done, failed, last = await wait_finished(engine, jobs, timeout_s)
        calls, _ = await asyncio.to_thread(server.arrivals)
        return _figures(done, failed, calls, started, last, jobs)
    finally:
        await scheduler.stop()
        await backend.close()
        await engine.dispose()


async def measure_api(
    db: BenchDatabase,
    jobs: int,
    workers: int,
    server: EndpointServer,
    config: dict[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    engine = create_engine(db.url)
    try:
        await seed_jobs(engine, jobs, due=far_future, endpoint_url=server.url)
        key = await create_engine_key(db)
        with api_process(db) as (url, api), engine_workers(workers, url, key, config) as procs:
            await wait_workers(engine, workers)
            await asyncio.sleep(0.5)
            server.reset()
            roots = {"api": [api.pid], "workers": [p.pid for p in procs]}
            cpu_before = cpu_seconds(roots)
            started = await make_all_due(engine)
            done, failed, last = await wait_finished(engine, jobs, timeout_s)
            cpu_used = _cpu_per_job(cpu_before, cpu_seconds(roots), done)
            calls, _ = await asyncio.to_thread(server.arrivals)
        return {**_figures(done, failed, calls, started, last, jobs), **cpu_used}
    finally:
        await engine.dispose()


def _cpu_per_job(
    before: dict[str, float], after: dict[str, float], jobs: int, *, postgres: bool = True
) -> dict[str, Any]:
    """CPU milliseconds per finished job by process group over the measurement (the
    `postgres` figure counts every PostgreSQL process on the machine; left out with
    `postgres=False`, for SQLite)."""
    per_job = {
        group: round(1000 * (after[group] - before[group]) / max(1, jobs), 3)
        for group in after
        if postgres or group != "postgres"
    }
    return {"cpu_ms_per_job": per_job, "cpu_ms_per_job_total": round(sum(per_job.values()), 3)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = engine_config(job_concurrency=args.job_concurrency, max_batch_size=args.batch)
    results: dict[str, Any] = {}
    kinds = ["sqlite"] + ([] if args.skip_postgres else ["postgres"])
    wanted = set(args.only.split(",")) if args.only else None

    def skip(name: str) -> bool:
        return wanted is not None and name not in wanted

    with EndpointServer() as server:
        for kind in kinds:
            if skip(f"floor_{kind}"):
                continue
            async with bench_database(kind) as db:
                results[f"floor_{kind}"] = await measure_floor(
                    db, args.jobs, args.batch, args.job_concurrency, args.timeout
                )
            print(f"floor_{kind}: {results[f'floor_{kind}']}", flush=True)
        if not args.skip_postgres and not skip("floor_asyncpg"):
            async with bench_database("postgres") as db:
                results["floor_asyncpg"] = await measure_floor_asyncpg(
                    db, args.jobs, args.batch, args.job_concurrency, args.timeout
                )
            print(f"floor_asyncpg: {results['floor_asyncpg']}", flush=True)
        if not skip("sqlite_inprocess_1w"):
            async with bench_database("sqlite") as db:
                results["sqlite_inprocess_1w"] = await measure_inprocess(
                    db, args.jobs, server, config, args.timeout
                )
            print(f"sqlite_inprocess_1w: {results['sqlite_inprocess_1w']}", flush=True)
        if not args.skip_postgres:
            for workers in (1, 2):
                name = f"postgres_api_{workers}w"
                if skip(name):
                    continue
                async with bench_database("postgres") as db:
                    results[name] = await measure_api(
                        db, args.jobs, workers, server, config, args.timeout
                    )
                print(f"{name}: {results[name]}", flush=True)
    return results


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, float] = {}
    targets: dict[str, Any] = {}
    plain = results.get("floor_asyncpg")
    for name, figures in results.items():
        if plain and (name.startswith("postgres") or name == "floor_postgres"):
            ratio = figures["jobs_per_s"] / plain["jobs_per_s"]
            ratios[f"{name}_vs_floor_asyncpg"] = round(ratio, 3)
        if name.startswith("floor_"):
            continue
        floor = results.get("floor_" + name.split("_", 1)[0])
        if floor:
            ratios[f"{name}_vs_floor"] = round(figures["jobs_per_s"] / floor["jobs_per_s"], 3)
        if name in TARGETS:
            targets[name] = {
                "target_jobs_per_s": TARGETS[name],
                "measured": figures["jobs_per_s"],
                "met": figures["jobs_per_s"] >= TARGETS[name] and figures["failed_runs"] == 0,
            }
    return {"ratios": ratios, "targets": targets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="500 jobs (script check)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated measurement names: floor_sqlite, floor_postgres, floor_asyncpg, "
        "sqlite_inprocess_1w, postgres_api_1w, postgres_api_2w",
    )
    parser.add_argument("--job-concurrency", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50, help="scheduler.max_batch_size")
    parser.add_argument(
        "--timeout",
        type=float,
        default=40.0,
        help="measurement window, s: jobs/s counts the runs finished within it",
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs = 500
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()
    results = asyncio.run(run(args))
    write_results(
        "engine_throughput",
        {
            "config": {
                "jobs": args.jobs,
                "scheduler.job_concurrency": args.job_concurrency,
                "scheduler.max_batch_size": args.batch,
                "execution.max_concurrency": 100,
                "planner": "rules",
            },
            "load_before": load_before,
            "load_after": machine_load(),
            "wall_s": round(time.monotonic() - started, 1),
            "results": results,
            **summarize(results),
        },
    )


if __name__ == "__main__":
    main()
