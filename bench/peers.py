"""Peer comparison: the same 1,000-job HTTP workload under APScheduler 3 and Cronicorn.

Each job makes one GET to a local zero-latency server (own process, records arrival times).
Two workloads, both measured at the server:

- burst:  1,000 jobs due at the same instant → throughput (jobs / (last arrival - due))
          and lag percentiles;
- spread: 1,000 jobs due over 5 s (200 due/s) → lag percentiles.

Schedulers, in the same run:
- `apscheduler_memory`: APScheduler 3 `AsyncIOScheduler`, memory job store, one `date`
  job per due time, the job coroutine does the aiohttp GET (nothing is persisted);
- `apscheduler_sqlite`: the same with `SQLAlchemyJobStore` on a SQLite file (persistent
  jobs, like Cronicorn's store; APScheduler's store is synchronous);
- `cronicorn_sqlite`: one in-process Cronicorn engine on SQLite, rules planner (every run
  also records its run, result, summary message and next run).

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
    results: dict[str, Any] = {"burst": {}, "spread_200_per_s": {}}
    names = ["apscheduler_memory", "apscheduler_sqlite", "cronicorn_sqlite"]
    with EndpointServer() as server:
        for workload, rate in (("burst", None), ("spread_200_per_s", 200.0)):
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
    return results


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
        },
    )


if __name__ == "__main__":
    main()
