"""Runs growth: does claiming stay flat when `runs` grows from 10 k to 10 M rows?

One database, one jobs table (10,000 jobs, one GET endpoint each, next run later today),
two sizes of history:

1. small: 10,000 finished runs (one per job). Every job also starts with a full claim
   context: `history_limit` (50) summary messages and `results_per_endpoint` (5) endpoint
   results, the most the claim ever reads per job, so both sizes read the same rows and the
   only difference is the size of the history around them;
2. large: history added until `runs` holds `--runs` rows (default 10 M, ~1,000 per job,
   spread over the 30 days before the small history), `--history-share` of them (default
   0.1) with their endpoint result and summary message (the engine writes one of each per
   run; 1.0 is realistic but triples the fill).

Rows are written with set-based SQL in the migrated schema (`bench/_history.py`: keys and
indexes dropped and rebuilt with their catalog definitions, then `VACUUM (ANALYZE)`, as
autovacuum would after a bulk insert). At each size `--rounds` times: the first `--due`
(1,000) jobs are made due and claimed in batches of `--batch` (20) through
`SchedulerRepository.claim_due_jobs`, each batch completed with one `complete_runs` group
commit (the engine's writes) — as `bench.scale` does. Reported per size: claim latency and
cycle time (claim + completion) p50/p95/p99, the fill time, table sizes. Target: claim
p50 (large) / p50 (small) ≤ 1.2.

    .venv/bin/python -m bench.runs_growth [--quick] [--runs 10000000] [--databases postgres]
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

from bench._fixtures import bench_database, machine_load, quiet_logs, seed_jobs
from bench._history import fill_history, table_bytes
from bench.common import summarize, write_results
from bench.scale import _later_today, claim_cycles
from cronicorn.store.db import create_engine
from cronicorn.store.scheduler_repo import SchedulerRepository

TARGET_RATIO = 1.2
DAY_S = 86_400.0


def _ms(values: list[float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in summarize(values).items() if k != "count"}


async def _measure(
    repo: SchedulerRepository, engine: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """`--rounds` rounds of claim cycles; the first two cycles (cold caches, statement
    preparation) are left out."""
    claims: list[float] = []
    cycles: list[float] = []
    for _ in range(args.rounds):
        got_claims, got_cycles = await claim_cycles(repo, engine, args.due, args.batch)
        claims += got_claims
        cycles += got_cycles
    return {
        "cycles": len(claims),
        "claim_ms": _ms(claims[2:] or claims),
        "cycle_ms": _ms(cycles[2:] or cycles),
    }


async def _run_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT count(*) FROM runs")) or 0)


async def measure_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with bench_database(kind) as db:
        engine = create_engine(db.url)
        try:
            repo = SchedulerRepository(engine, db.secret_box)
            now = datetime.now(UTC)
            print(f"{kind}: seeding {args.jobs:,} jobs", flush=True)
            await seed_jobs(
                engine,
                args.jobs,
                due=partial(_later_today, now, random.Random(7)),
                endpoint_url=lambda i: f"http://127.0.0.1:9/j/{i}",
            )
            small_newest = now - timedelta(minutes=1)
            small_span = 3600.0
            print(f"{kind}: small history ({args.jobs:,} runs, full contexts)", flush=True)
            small_fill = await fill_history(
                engine,
                jobs=args.jobs,
                count=args.jobs,
                newest=small_newest,
                span_s=small_span,
                share=1.0,
                results_per_run=repo.results_per_endpoint,
                messages_per_run=repo.history_limit,
                rebuild=not args.keep_indexes,
            )
            small = await _measure(repo, engine, args)
            small["runs_in_table"] = await _run_count(engine)
            small["fill"] = small_fill.as_dict()
            small["table_bytes"] = await table_bytes(engine)
            results["small"] = small
            print(f"{kind} small: {small}", flush=True)

            added = max(0, args.runs - small["runs_in_table"])
            print(f"{kind}: large history (+{added:,} runs)", flush=True)
            large_fill = await fill_history(
                engine,
                jobs=args.jobs,
                count=added,
                start=args.jobs,
                newest=small_newest - timedelta(seconds=small_span),
                span_s=args.history_days * DAY_S,
                share=args.history_share,
                rebuild=not args.keep_indexes,
            )
            large = await _measure(repo, engine, args)
            large["runs_in_table"] = await _run_count(engine)
            large["fill"] = large_fill.as_dict()
            large["table_bytes"] = await table_bytes(engine)
            results["large"] = large
            print(f"{kind} large: {large}", flush=True)
        finally:
            await engine.dispose()
    results["ratios"] = {
        f"{name}_{pct}": round(results["large"][name][pct] / results["small"][name][pct], 3)
        for name in ("claim_ms", "cycle_ms")
        for pct in ("p50", "p99")
    }
    return results


def targets(results: dict[str, Any]) -> dict[str, Any]:
    verdict: dict[str, Any] = {}
    for kind, figures in results.items():
        ratio = figures["ratios"]["claim_ms_p50"]
        verdict[f"{kind}_claim_p50_ratio"] = {
            "runs": [figures["small"]["runs_in_table"], figures["large"]["runs_in_table"]],
            "measured": ratio,
            "target": TARGET_RATIO,
            "met": ratio <= TARGET_RATIO,
        }
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000_000, help="runs in the large stage")
    parser.add_argument("--quick", action="store_true", help="1 M runs, 1 round (script check)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs = runs in the small stage")
    parser.add_argument("--databases", default="postgres", help="postgres[,sqlite]")
    parser.add_argument("--due", type=int, default=1_000, help="jobs claimed per round")
    parser.add_argument("--batch", type=int, default=20, help="claim batch size")
    parser.add_argument("--rounds", type=int, default=3, help="claim rounds per size")
    parser.add_argument(
        "--history-share",
        type=float,
        default=0.1,
        help="share of the added runs that also get an endpoint result and a message",
    )
    parser.add_argument("--history-days", type=float, default=30.0, help="span of the history")
    parser.add_argument(
        "--keep-indexes",
        action="store_true",
        help="fill with every key and index in place (slower; no rebuild)",
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds = 1_000_000, 1
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()
    results: dict[str, Any] = {}
    for kind in args.databases.split(","):
        results[kind] = asyncio.run(measure_database(kind, args))
    write_results(
        "runs_growth",
        {
            "config": {
                "jobs": args.jobs,
                "runs_large": args.runs,
                "history_share": args.history_share,
                "history_days": args.history_days,
                "due_per_round": args.due,
                "batch": args.batch,
                "rounds": args.rounds,
                "rebuild_indexes": not args.keep_indexes,
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
