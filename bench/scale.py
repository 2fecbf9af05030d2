"""Scale: does claiming stay flat as the store grows from 1k to 10k to 100k jobs?

The store grows in place (1k jobs, then 9k more, then 90k more; one endpoint each, next run
spread over the coming day). At each size `--due` jobs are made due and claimed in batches
of `--batch` through `SchedulerRepository`, each cycle also writing the plan and completion
of every claimed job. Reported per size: claim latency (the one-statement claim plus the
batched context reads), per-cycle database time (claim + writes), and the idle queries
(`next_due_at`). Baseline: the same figures at 1k jobs, as ratios.

Worker memory: at the smallest and largest size a real engine worker process (on
`cronicorn serve`) processes the due jobs and its resident memory (RSS) is read.

    .venv/bin/python -m bench.scale [--quick] [--databases postgres,sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from bench._fixtures import (
    BenchDatabase,
    EndpointServer,
    api_server,
    bench_database,
    create_engine_key,
    engine_config,
    engine_workers,
    finished_runs,
    job_id,
    jobs_t,
    machine_load,
    quiet_logs,
    rss_mib,
    seed_jobs,
    wait_finished,
    wait_workers,
)
from bench.common import summarize, write_results
from bench.engine_throughput import LEASE_MS, _completion
from cronicorn.store.db import create_engine
from cronicorn.store.scheduler_repo import SchedulerRepository

TARGET_RATIO = 1.5


def _ms(values: list[float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in summarize(values).items() if k != "count"}


def _later_today(now: datetime, rng: random.Random, _: int) -> datetime:
    return now + timedelta(seconds=rng.uniform(3600, 86_400))


async def make_due(engine: Any, count: int) -> None:
    """The first `count` jobs become due (a minute ago)."""
    ids = [job_id(i) for i in range(count)]
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with engine.begin() as conn:
        await conn.execute(sa.update(jobs_t).where(jobs_t.c.id.in_(ids)).values(next_run_at=past))


async def claim_cycles(
    repo: SchedulerRepository, engine: Any, due: int, batch: int
) -> tuple[list[float], list[float]]:
    """Make the first `due` jobs due, then claim them in batches of `batch`, completing each
    batch with one `complete_runs` group commit (the engine's writes). Returns the claim
    latencies and the whole cycle times (claim + completion), ms, one per batch."""
    await make_due(engine, due)
    claims: list[float] = []
    cycles: list[float] = []
    while True:
        started = time.perf_counter()
        claimed = await repo.claim_due_jobs("scale", batch, LEASE_MS)
        claimed_at = time.perf_counter()
        if not claimed:
            break
        now = datetime.now(UTC)  # the engine's writes: one group commit, no rules plan record
        await repo.complete_runs([(job.lease, _completion(job, now)) for job in claimed])
        claims.append((claimed_at - started) * 1000)
        cycles.append((time.perf_counter() - started) * 1000)
    return claims, cycles


async def measure_cycles(db: BenchDatabase, engine: Any, due: int, batch: int) -> dict[str, Any]:
    repo = SchedulerRepository(engine, db.secret_box)
    claims, cycles = await claim_cycles(repo, engine, due, batch)
    idle_next: list[float] = []
    for _ in range(20):
        started = time.perf_counter()
        await repo.next_due_at()
        idle_next.append((time.perf_counter() - started) * 1000)
    warm = claims[2:] or claims  # the first cycles also warm caches and prepared statements
    return {
        "cycles": len(claims),
        "claim_ms": _ms(warm),
        "cycle_db_ms": _ms(cycles[2:] or cycles),
        "next_due_at_ms": _ms(idle_next),
    }


async def worker_memory(
    db: BenchDatabase, engine: Any, server: EndpointServer, due: int
) -> dict[str, Any]:
    """One engine worker on the API processes `due` jobs; its RSS before and after."""
    before, _, _ = await finished_runs(engine)
    key = await create_engine_key(db)
    config = engine_config(job_concurrency=50, max_batch_size=50)
    with api_server(db) as url, engine_workers(1, url, key, config) as workers:
        await wait_workers(engine, 1)
        idle = rss_mib(workers[0].pid)
        await make_due(engine, due)
        done, _, _ = await wait_finished(engine, before + due, 120)
        return {
            "jobs_processed": done - before,
            "worker_rss_idle_mib": round(idle, 1),
            "worker_rss_after_mib": round(rss_mib(workers[0].pid), 1),
        }


async def measure_database(
    kind: str, sizes: list[int], args: argparse.Namespace, server: EndpointServer
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rng = random.Random(7)
    async with bench_database(kind) as db:
        engine = create_engine(db.url)
        try:
            seeded = 0
            for size in sizes:
                started = time.monotonic()
                now = datetime.now(UTC)
                await seed_jobs(
                    engine,
                    size - seeded,
                    start=seeded,
                    due=partial(_later_today, now, rng),
                    endpoint_url=server.url,
                )
                seeded = size
                seed_s = time.monotonic() - started
                figures = await measure_cycles(db, engine, args.due, args.batch)
                figures["seed_s"] = round(seed_s, 1)
                if size in (sizes[0], sizes[-1]) and not args.skip_memory:
                    figures["memory"] = await worker_memory(db, engine, server, args.due)
                results[str(size)] = figures
                print(f"{kind} {size}: {figures}", flush=True)
        finally:
            await engine.dispose()
    first, last = results[str(sizes[0])], results[str(sizes[-1])]
    ratio = last["claim_ms"]["p50"] / first["claim_ms"]["p50"]
    results["claim_p50_ratio_largest_vs_smallest"] = round(ratio, 3)
    results["cycle_p50_ratio_largest_vs_smallest"] = round(
        last["cycle_db_ms"]["p50"] / first["cycle_db_ms"]["p50"], 3
    )
    results["target"] = {"max_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO}
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [1_000, 5_000] if args.quick else [1_000, 10_000, 100_000]
    results: dict[str, Any] = {}
    with EndpointServer() as server:
        for kind in args.databases.split(","):
            results[kind] = await measure_database(kind, sizes, args, server)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 5k jobs")
    parser.add_argument("--databases", default="postgres", help="postgres,sqlite")
    parser.add_argument("--due", type=int, default=400, help="jobs claimed per size")
    parser.add_argument("--batch", type=int, default=20, help="claim batch size")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()
    results = asyncio.run(run(args))
    write_results(
        "scale",
        {
            "config": {"due_per_size": args.due, "batch": args.batch},
            "load_before": load_before,
            "load_after": machine_load(),
            "wall_s": round(time.monotonic() - started, 1),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
