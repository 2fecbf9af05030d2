"""Peer comparison: the same 1,000-job HTTP workload under APScheduler 3 and Cronicorn.

Each job makes one GET to a local zero-latency server (own process, records arrival times).
Three workloads, all measured at the server:

- burst:  1,000 jobs due at the same instant → throughput (jobs / (last arrival - due))
          and lag percentiles;
- spread: 1,000 jobs due over 10 s (100 due/s) and over 5 s (200 due/s) → lag percentiles.

Schedulers, in the same run:
- `apscheduler_memory`: APScheduler 3 `AsyncIOScheduler`, memory job store, one `date`
  job per due time, the job coroutine does the aiohttp GET (nothing is persisted);
- `apscheduler_sqlite`: the same with `SQLAlchemyJobStore` on a SQLite file (persistent
  jobs, like Cronicorn's store; APScheduler's store is synchronous);
- `cronicorn_sqlite`: one in-process Cronicorn engine on SQLite, rules planner (every run
  also records its run, result, summary message and next run).

Targets block: Cronicorn's p99 lag at 200 due/s within 3 x APScheduler's SQLAlchemy-store
p99 measured in the same run (the ratio at 100 due/s is reported beside it).

    .venv/bin/python -m bench.peers [--quick] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench._fixtures import (
    EndpointServer,
    bench_database,
    due_spread,
    engine_config,
    machine_load,
    quiet_logs,
    seed_jobs,
    wait_finished,
)
from bench.common import summarize, write_results
from cronicorn.store.db import create_engine

LEAD_S = 2.0
SPREADS = {"spread_100_per_s": 100.0, "spread_200_per_s": 200.0}
TARGET_P99_RATIO = 3.0
"""Cronicorn p99 / APScheduler SQLAlchemy-store p99 at 200 due/s."""
PERSIST_ADD_S = 0.015
"""Lead time per job for APScheduler's SQLAlchemy store (one synchronous INSERT each)."""
_session: aiohttp.ClientSession | None = None
_done: asyncio.Event | None = None
_remaining = 0


async def aps_fire(url: str) -> None:
    """The APScheduler job (module level so the SQLAlchemy store can reference it)."""
    global _remaining
    assert _session is not None
    assert _done is not None
    async with _session.get(url) as resp:
        await resp.read()
    _remaining -= 1
    if _remaining <= 0:
        _done.set()


async def run_apscheduler(
    server: EndpointServer, due: list[datetime], persistent: bool, timeout_s: float
) -> float:
    """Run the jobs; returns by how much adding them overran the first due time (s)."""
    global _session, _done, _remaining
    _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    _done, _remaining = asyncio.Event(), len(due)
    defaults = {"misfire_grace_time": None, "coalesce": False, "max_instances": 1}
    with tempfile.TemporaryDirectory(prefix="aps-bench-") as tmp:
        stores = (
            {"default": SQLAlchemyJobStore(url=f"sqlite:///{tmp}/jobs.db")} if persistent else {}
        )
        scheduler = AsyncIOScheduler(jobstores=stores, job_defaults=defaults, timezone=UTC)
        scheduler.start()
        for i, at in enumerate(due):
            scheduler.add_job(aps_fire, "date", run_date=at, args=[server.url(i)], id=str(i))
        overran = max(0.0, time.time() - due[0].timestamp())
        try:
            await asyncio.wait_for(_done.wait(), timeout_s)
        finally:
            scheduler.shutdown(wait=False)
            await _session.close()
    return overran


def due_times(jobs: int, rate: float | None, lead_s: float = LEAD_S) -> list[datetime]:
    """All at `now + lead_s` (burst), or spread from there at `rate` per second."""
    start = datetime.now(UTC) + timedelta(seconds=lead_s)
    due_at: Callable[[int], datetime] = (
        (lambda _: start) if rate is None else due_spread(start, rate)
    )
    return [due_at(i) for i in range(jobs)]


async def run_cronicorn(
    server: EndpointServer, jobs: int, rate: float | None, timeout_s: float
) -> list[datetime]:
    from cronicorn.engine.factory import create_scheduling_engine
    from cronicorn.store.local_backend import LocalSchedulerBackend

    async with bench_database("sqlite") as db:
        engine = create_engine(db.url)
        due = due_times(jobs, rate)  # after the database is migrated, like APScheduler's setup
        await seed_jobs(engine, jobs, due=due.__getitem__, endpoint_url=server.url)
        backend = LocalSchedulerBackend(engine, db.secret_box)
        config = engine_config(job_concurrency=100, max_batch_size=50)
        try:
            async with create_scheduling_engine(config, backend=backend):
                await wait_finished(engine, jobs, timeout_s)
        finally:
            await backend.close()
            await engine.dispose()
    return due


async def measure(
    server: EndpointServer, name: str, jobs: int, rate: float | None, timeout_s: float
) -> dict[str, Any]:
    server.reset()
    setup_overran = 0.0
    if name == "cronicorn_sqlite":
        due = await run_cronicorn(server, jobs, rate, timeout_s)
    else:
        persistent = name == "apscheduler_sqlite"
        # Its store writes each added job synchronously: leave time for that.
        due = due_times(jobs, rate, LEAD_S + (PERSIST_ADD_S * jobs if persistent else 0))
        setup_overran = await run_apscheduler(server, due, persistent, timeout_s)
    start = due[0]
    total, arrivals = await asyncio.to_thread(server.arrivals)
    lags = [(arrivals[i] - d.timestamp()) * 1000 for i, d in enumerate(due) if i in arrivals]
    figures: dict[str, Any] = {"requests": total, "missing": jobs - len(lags)}
    if setup_overran:
        figures["setup_overran_first_due_s"] = round(setup_overran, 3)
    if lags:
        figures["lag_ms"] = {k: round(v, 1) for k, v in summarize(lags).items() if k != "count"}
    if rate is None and arrivals:
        span = max(arrivals.values()) - start.timestamp()
        figures["jobs_per_s"] = round(len(arrivals) / max(span, 1e-6), 1)
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workloads: list[tuple[str, float | None]] = [("burst", None), *SPREADS.items()]
    results: dict[str, Any] = {workload: {} for workload, _ in workloads}
    names = ["apscheduler_memory", "apscheduler_sqlite", "cronicorn_sqlite"]
    with EndpointServer() as server:
        for workload, rate in workloads:
            for name in names:
                figures = await measure(server, name, args.jobs, rate, args.timeout)
                results[workload][name] = figures
                print(f"{workload} {name}: {figures}", flush=True)
    burst = results["burst"]
    aps = burst["apscheduler_memory"].get("jobs_per_s")
    ours = burst["cronicorn_sqlite"].get("jobs_per_s")
    if aps and ours:
        results["cronicorn_vs_apscheduler_memory_throughput"] = round(ours / aps, 3)
    aps_db = burst["apscheduler_sqlite"].get("jobs_per_s")
    if aps_db and ours:
        results["cronicorn_vs_apscheduler_sqlite_throughput"] = round(ours / aps_db, 3)
    results["lag_ratios"] = lag_ratios(results)
    return results


def _p(figures: dict[str, Any], pct: str) -> float | None:
    value = figures.get("lag_ms", {}).get(pct)
    return float(value) if value is not None else None


def lag_ratios(results: dict[str, Any]) -> dict[str, float]:
    """Cronicorn's lag / APScheduler's, per spread workload, store and percentile."""
    ratios: dict[str, float] = {}
    for workload in SPREADS:
        ours = results[workload]["cronicorn_sqlite"]
        for peer in ("apscheduler_memory", "apscheduler_sqlite"):
            for pct in ("p50", "p99"):
                mine, theirs = _p(ours, pct), _p(results[workload][peer], pct)
                if mine is not None and theirs is not None:
                    key = f"{workload}_{pct}_vs_{peer}"
                    ratios[key] = round(mine / max(theirs, 0.1), 2)
    return ratios


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Cronicorn p99 at 200 due/s ≤ 3 x APScheduler's SQLAlchemy store p99 (same run); the
    100 due/s ratio is reported with the same limit."""
    verdict: dict[str, Any] = {}
    for workload in SPREADS:
        ours = results[workload]["cronicorn_sqlite"]
        peer = results[workload]["apscheduler_sqlite"]
        mine, theirs = _p(ours, "p99"), _p(peer, "p99")
        ratio = (
            round(mine / max(theirs, 0.1), 2) if mine is not None and theirs is not None else None
        )
        verdict[f"{workload}_p99_vs_apscheduler_sqlite"] = {
            "cronicorn_p99_ms": mine,
            "apscheduler_sqlite_p99_ms": theirs,
            "measured": ratio,
            "target": TARGET_P99_RATIO,
            "met": ratio is not None
            and ratio <= TARGET_P99_RATIO
            and ours.get("missing") == 0
            and peer.get("missing") == 0,
            "counts_for_done_when": workload == "spread_200_per_s",
        }
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="200 jobs")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    if args.quick:
        args.jobs = 200
    quiet_logs()
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    load_before = machine_load()
    started = time.monotonic()
    results = asyncio.run(run(args))
    write_results(
        "peers",
        {
            "config": {
                "jobs": args.jobs,
                "cronicorn": "in-process, SQLite, rules planner, job_concurrency=100, batch=50",
                "apscheduler": "3.x AsyncIOScheduler, aiohttp connector limit=100",
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
