"""Scheduling lag: first request at the endpoint server minus the job's due time.

40 jobs due 500 ms apart (an idle engine between them), then 2,000 jobs with due times spread
over 20 s (100 due/s) and over 4 s (500 due/s), one GET
endpoint each on a local zero-latency server (own process, records arrival times). The
engine (rules planner) runs in-process on SQLite by default, or as worker processes on
`cronicorn serve` + PostgreSQL with `--backend postgres-api`.

Baseline in the same run: a bare asyncio loop that sleeps until each due time and sends the
GET with aiohttp — the lag this machine adds by itself (timer wake-ups, scheduling noise).

    .venv/bin/python -m bench.lag [--quick] [--backend sqlite|postgres-api] [--workers 1]
                                  [--rates idle,100,500]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bench._fixtures import (
    BenchDatabase,
    EndpointServer,
    api_server,
    bench_database,
    create_engine_key,
    due_spread,
    engine_config,
    engine_workers,
    machine_load,
    quiet_logs,
    schedule_due,
    seed_jobs,
    wait_finished,
    wait_workers,
)
from bench.common import summarize, write_results
from cronicorn.store.db import create_engine

LEAD_S = 1.0
"""Time between setting the due times (the engines are up and idle) and the first due job."""
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
TARGETS_MS = {
    "idle": {"p50": 9.9},
    "100_per_s": {"p50": 20.0, "p99": 100.0},
    "500_per_s": {"p99": 250.0},
}
IDLE_RATE = 2.0
"""Due jobs per second of the idle measurement: 500 ms apart, the engine idles between."""


def lags_ms(arrivals: dict[int, float], due: list[datetime]) -> tuple[list[float], int]:
    """Lag per job that was called, and how many were never called."""
    values = [(arrivals[i] - d.timestamp()) * 1000 for i, d in enumerate(due) if i in arrivals]
    return values, len(due) - len(values)


def _stats(values: list[float], missing: int) -> dict[str, Any]:
    if not values:
        return {"missing": missing}
    return {**{k: round(v, 1) for k, v in summarize(values).items()}, "missing": missing}


async def baseline(server: EndpointServer, jobs: int, rate: float) -> dict[str, Any]:
    """Sleep until each due time, then GET — no database, no engine."""
    server.reset()
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    due = [due_spread(start, rate)(i) for i in range(jobs)]
    async with aiohttp.ClientSession() as session:

        async def fire(i: int) -> None:
            await asyncio.sleep(max(0.0, due[i].timestamp() - time.time()))
            async with session.get(server.url(i)) as resp:
                await resp.read()

        await asyncio.gather(*(fire(i) for i in range(jobs)))
    _, arrivals = await asyncio.to_thread(server.arrivals)
    return _stats(*lags_ms(arrivals, due))


async def _run_engine(
    db: BenchDatabase, args: argparse.Namespace, config: dict[str, Any], until: Any
) -> None:
    """Run the engine(s) for this backend until `until()` returns."""
    if args.backend == "sqlite":
        from cronicorn.engine.factory import create_scheduling_engine
        from cronicorn.store.local_backend import LocalSchedulerBackend

        backend = LocalSchedulerBackend(db.url, db.secret_box)
        async with create_scheduling_engine(config, backend=backend):
            await until()
        await backend.close()
        return
    key = await create_engine_key(db)
    engine = create_engine(db.url)
    try:
        with api_server(db) as url, engine_workers(args.workers, url, key, config):
            await wait_workers(engine, args.workers)
            await until()
    finally:
        await engine.dispose()


async def measure(
    server: EndpointServer, args: argparse.Namespace, jobs: int, rate: float
) -> dict[str, Any]:
    kind = "sqlite" if args.backend == "sqlite" else "postgres"
    config = engine_config(
        job_concurrency=args.job_concurrency,
        max_batch_size=args.batch,
        claim_ahead_ms=args.claim_ahead_ms,
    )
    async with bench_database(kind) as db:
        engine = create_engine(db.url)
        await seed_jobs(engine, jobs, due=lambda _: FAR_FUTURE, endpoint_url=server.url)
        due: list[datetime] = []

        async def until() -> None:
            """The engines are up and idle: set the due times from now, then wait."""
            await asyncio.sleep(0.5)
            start = datetime.now(UTC) + timedelta(seconds=LEAD_S)
            due.extend(due_spread(start, rate)(i) for i in range(jobs))
            server.reset()
            await schedule_due(engine, due)
            await wait_finished(engine, jobs, LEAD_S + jobs / rate + args.timeout)

        try:
            await _run_engine(db, args, config, until)
            done, failed, _ = await wait_finished(engine, jobs, 0)
        finally:
            await engine.dispose()
    _, arrivals = await asyncio.to_thread(server.arrivals)
    return {
        "finished_runs": done,
        "failed_runs": failed,
        "lag_ms": _stats(*lags_ms(arrivals, due)),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with EndpointServer() as server:
        for rate_name in args.rates.split(","):
            idle = rate_name == "idle"
            rate = IDLE_RATE if idle else float(rate_name)
            jobs = args.idle_jobs if idle else args.jobs
            name = "idle" if idle else f"{rate:g}_per_s"
            base = await baseline(server, jobs, rate)
            figures = await measure(server, args, jobs, rate)
            figures["baseline_lag_ms"] = base
            p99, base_p99 = figures["lag_ms"].get("p99"), base.get("p99")
            if p99 is not None and base_p99:
                figures["p99_vs_baseline"] = round(p99 / max(base_p99, 0.1), 1)
            results[name] = figures
            print(f"{name}: engine {figures['lag_ms']}, baseline {base}", flush=True)
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    for name, limits in TARGETS_MS.items():
        lag = results.get(name, {}).get("lag_ms", {})
        for pct, limit in limits.items():
            measured = lag.get(pct)
            verdict[f"{name}_{pct}"] = {
                "target_ms": limit,
                "measured_ms": measured,
                "met": measured is not None and measured <= limit and lag.get("missing") == 0,
            }
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true", help="200 jobs per rate")
    parser.add_argument("--backend", choices=["sqlite", "postgres-api"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="with postgres-api")
    parser.add_argument("--job-concurrency", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50, help="scheduler.max_batch_size")
    parser.add_argument(
        "--claim-ahead-ms",
        type=int,
        default=200,
        help="scheduler.claim_ahead_ms (0: claim at the due time, as before claim-ahead)",
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="s after the last due")
    parser.add_argument(
        "--rates",
        default="idle,100,500",
        help="due jobs per second to measure; `idle`: one job every 500 ms",
    )
    parser.add_argument("--idle-jobs", type=int, default=40, help="jobs of the idle rate")
    args = parser.parse_args()
    if args.quick:
        args.jobs = 200
        args.idle_jobs = 10
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()
    results = asyncio.run(run(args))
    write_results(
        "lag" if args.backend == "sqlite" else f"lag_{args.backend}",
        {
            "config": {
                "jobs_per_rate": args.jobs,
                "idle_jobs": args.idle_jobs,
                "backend": args.backend,
                "workers": args.workers if args.backend != "sqlite" else 1,
                "scheduler.job_concurrency": args.job_concurrency,
                "scheduler.max_batch_size": args.batch,
                "scheduler.claim_ahead_ms": args.claim_ahead_ms,
                "planner": "rules",
            },
            "load_before": load_before,
            "load_after": machine_load(),
            "wall_s": round(time.monotonic() - started, 1),
            "results": results,
            "targets": targets(results),
        },
    )


if __name__ == "__main__":
    main()
