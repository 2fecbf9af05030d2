"""Prune under load: does removing 1 M old runs raise the engine's lag at 200 due jobs/s?

PostgreSQL, `cronicorn serve` (which runs the retention pruner, `store/retention.py`) and one
engine worker process on it (rules planner, instant local endpoint: `bench._fixtures`).

Set-up: `--history-jobs` (1,000) jobs that are never due own `--old-runs` (1 M) finished
runs started 31 to 41 days ago, past the 30-day run retention, each with its endpoint result
and summary message (`--history-share`; `bench/_history.py`). Enough other jobs to cover the
whole timeline at `--rate` (one GET endpoint each, baseline interval 1 h so each runs once)
get due times spread at `--rate` (200) per second once the worker is up (one UPDATE, like
`bench.lag`). The active jobs have no old history, so their claims read the same rows in
both windows.

The server starts with `CRONICORN_RUN_RETENTION_DAYS=30` and `CRONICORN_PRUNE_INTERVAL_MS`
set so that its first prune pass begins right after the baseline window:

- baseline window: jobs due from `--warmup-s` after the first due time until the earliest
  moment the pruner can start (server start + interval) — the engine alone;
- prune window: jobs due from the latest moment the pruner can have started (server
  ready + interval) until the pass has ended — it released the pruning lock it holds for the
  whole pass (`pg_locks`, polled every 0.5 s), after removing every old run and message
  (PostgreSQL's `pg_stat_user_tables.n_tup_del`) — or `--prune-window-s` (900) has passed.
  The pruner is paced (`CRONICORN_PRUNE_DUTY_PERCENT`, default 25: it sleeps three times as
  long as each batch took), so a pass of 1 M runs takes minutes; the cap is long enough for
  the whole pass to fall inside the window.

Lag = first request at the endpoint server minus the due time, per job (as `bench.lag`). Reported:
p50/p95/p99/max per window, rows pruned within the window, whether the pass finished and
how long it took. Target: p99 (prune) - p99 (baseline) ≤ 20 ms, with the pass finished
inside the window and every job in both windows run.

    .venv/bin/python -m bench.prune_load [--quick] [--old-runs 1000000] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench._fixtures import (
    EndpointServer,
    api_process,
    bench_database,
    cpu_seconds,
    create_engine_key,
    engine_config,
    engine_workers,
    machine_load,
    quiet_logs,
    seed_jobs,
    wait_workers,
)
from bench._history import fill_history, table_bytes
from bench.common import summarize, write_results
from cronicorn.runtime import eventloop
from cronicorn.store.db import create_engine
from cronicorn.store.notify import notify_jobs_changed
from cronicorn.store.retention import PRUNER_LOCK

TARGET_RISE_MS = 20.0
RETENTION_DAYS = 30
STARTUP_ALLOWANCE_S = 30.0
"""From `cronicorn serve` answering to the worker being up and the due times set."""
LIFESPAN_MARGIN_S = 2.0
"""The pruner's clock starts in the server's lifespan start-up, just before it answers
/health: the baseline window ends this long before `ready + interval` to be safe."""
FIRST_DUE_S = 3.0
"""From setting the due times to the first due job."""
DRAIN_S = 30.0
"""After the prune window: how long to wait for the jobs due in it to be called."""


def _lag_stats(values: list[float], missing: int) -> dict[str, Any]:
    if not values:
        return {"jobs": 0, "missing": missing}
    stats = {k: round(v, 1) for k, v in summarize(values).items() if k != "count"}
    return {"jobs": len(values) + missing, **stats, "missing": missing}


def window_lags(
    arrivals: dict[int, float], due: dict[int, float], start: float, end: float
) -> dict[str, Any]:
    """Lag stats (ms) of the jobs due in [start, end) (epoch seconds)."""
    values: list[float] = []
    missing = 0
    for index, at in due.items():
        if start <= at < end:
            if index in arrivals:
                values.append((arrivals[index] - at) * 1000)
            else:
                missing += 1
    return _lag_stats(values, missing)


def lag_series(
    arrivals: dict[int, float], due: dict[int, float], start: float, end: float, step: float
) -> list[dict[str, Any]]:
    """Lag p50/p99 (ms) per `step` seconds of due times in [start, end): where a window's
    lag grows (e.g. the engine falling behind) and which part of the pass it lines up with."""
    series = []
    at = start
    while at < end:
        stats = window_lags(arrivals, due, at, min(at + step, end))
        series.append(
            {"from_s": round(at - start), **{k: stats.get(k) for k in ("p50", "p99", "missing")}}
        )
        at += step
    return series


PROBE_TICK_S = 0.02
"""The bare timer probe wakes every 20 ms."""


def timer_probe(stop: Any, out: Any) -> None:
    """The machine's own share of the lag: a bare event loop in a process of its own (the
    loop the engine's worker runs on) that sleeps until every tick and records how late it
    woke (epoch tick, ms late) until `stop` is set, then puts the samples on `out`."""

    async def probe() -> list[tuple[float, float]]:
        samples: list[tuple[float, float]] = []
        next_at = time.time() + PROBE_TICK_S
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.time()))
            samples.append((next_at, (time.time() - next_at) * 1000))
            next_at += PROBE_TICK_S
        return samples

    out.put(eventloop.run(probe()))


def probe_lags(samples: list[tuple[float, float]], start: float, end: float) -> dict[str, Any]:
    """Timer lateness stats (ms) of the probe's ticks in [start, end)."""
    return _lag_stats([late for at, late in samples if start <= at < end], 0)


async def deleted_rows(engine: Any) -> dict[str, int]:
    """Rows deleted so far from each history table (the pruner is the only deleter)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT relname, n_tup_del FROM pg_stat_user_tables"
                " WHERE relname IN ('runs', 'endpoint_results', 'messages')"
            )
        )
        return {name: int(count) for name, count in rows}


async def pass_running(engine: Any) -> bool:
    """Whether a prune pass holds the pruning lock (`store.retention.PRUNER_LOCK`, a session
    advisory lock held from a pass's start to its end: its last batch, the cap check and the
    error and alert rules included)."""
    async with engine.connect() as conn:
        held = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = 0 AND objid = :key AND objsubid = 1"
            ),
            {"key": PRUNER_LOCK},
        )
    return bool(held)


async def claim_delays(engine: Any, start: float, end: float) -> dict[str, Any]:
    """The engine's own view, from the run rows: claim time (`started_at`) minus due time,
    p50/p99 ms, for the runs due in [start, end)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),"
                    " percentile_cont(0.99) WITHIN GROUP (ORDER BY d) FROM ("
                    " SELECT extract(epoch FROM started_at - due_at) * 1000 AS d FROM runs"
                    " WHERE due_at >= to_timestamp(:start) AND due_at < to_timestamp(:end)"
                    " AND worker_id <> 'bench-fill') AS delays"
                ),
                {"start": start, "end": end},
            )
        ).one()
    return {
        "runs": int(row[0]),
        "p50": round(float(row[1]), 1) if row[1] is not None else None,
        "p99": round(float(row[2]), 1) if row[2] is not None else None,
    }


async def set_due_times(engine: Any, first_index: int, count: int, rate: float) -> dict[int, float]:
    """Active job `first_index + n` becomes due at `t0 + n / rate` (one UPDATE + NOTIFY);
    returns the due times (epoch seconds) by job index."""
    t0 = datetime.now(UTC) + timedelta(seconds=FIRST_DUE_S)
    index = "CAST(substr(name, 11) AS integer)"  # the fixture's names: "bench job <i>"
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                f"UPDATE jobs SET next_run_at = CAST(:t0 AS timestamptz) + ({index} - :first)"
                f" * CAST(:step_us AS double precision) * interval '1 microsecond'"
                f" WHERE {index} >= :first"
            ),
            {"t0": t0, "first": first_index, "step_us": 1_000_000 / rate},
        )
        last_due = await conn.scalar(
            sa.text("SELECT next_run_at FROM jobs WHERE name = :name"),
            {"name": f"bench job {first_index + count - 1}"},
        )
        await notify_jobs_changed(conn)
    base = t0.timestamp()
    expected = base + (count - 1) / rate
    if last_due is None or abs(last_due.timestamp() - expected) > 0.001:
        raise RuntimeError(f"due times not set as computed: {last_due} vs {expected}")
    return {first_index + n: base + n / rate for n in range(count)}


async def run(args: argparse.Namespace, server: EndpointServer) -> dict[str, Any]:
    interval_s = STARTUP_ALLOWANCE_S + args.warmup_s + args.baseline_s
    active = int(args.rate * (interval_s + args.prune_window_s + 5))
    history_jobs = args.history_jobs
    async with bench_database("postgres") as db:
        engine = create_engine(db.url)
        try:
            far = datetime.now(UTC) + timedelta(days=1)
            print(f"seeding {history_jobs:,} history jobs + {active:,} active jobs", flush=True)
            started = time.monotonic()
            await seed_jobs(
                engine,
                history_jobs + active,
                due=lambda _: far,
                endpoint_url=server.url,
            )
            seed_s = time.monotonic() - started
            print(f"filling {args.old_runs:,} old runs", flush=True)
            cutoff_age = timedelta(days=RETENTION_DAYS + 1)
            fill = await fill_history(
                engine,
                jobs=history_jobs,
                count=args.old_runs,
                newest=datetime.now(UTC) - cutoff_age,
                span_s=10 * 86_400.0,
                share=args.history_share,
            )
            sizes_before = await table_bytes(engine)
            deleted_before = await deleted_rows(engine)
            key = await create_engine_key(db)
            config = engine_config(
                job_concurrency=args.job_concurrency,
                max_batch_size=args.batch,
                **({} if args.claim_ahead_ms is None else {"claim_ahead_ms": args.claim_ahead_ms}),
            )
            env = {
                "CRONICORN_RUN_RETENTION_DAYS": str(RETENTION_DAYS),
                "CRONICORN_PRUNE_INTERVAL_MS": str(int(interval_s * 1000)),
            }
            print(f"serve + 1 worker; first prune pass in {interval_s:.0f} s", flush=True)
            spawn = multiprocessing.get_context("spawn")
            probe_stop, probe_out = spawn.Event(), spawn.Queue()
            prober = spawn.Process(target=timer_probe, args=(probe_stop, probe_out), daemon=True)
            prober.start()
            with (
                api_process(db, env=env) as (url, api),
                engine_workers(1, url, key, config) as workers,
            ):
                ready_at = time.time()
                await wait_workers(engine, 1)
                due = await set_due_times(engine, history_jobs, active, args.rate)
                first_due = min(due.values())
                prune_start = ready_at + interval_s
                baseline = (first_due + args.warmup_s, prune_start - LIFESPAN_MARGIN_S)
                if baseline[1] - baseline[0] < args.baseline_s / 2:
                    print("  warning: slow start-up, the baseline window is short", flush=True)
                roots = {"api": [api.pid], "worker": [w.pid for w in workers]}
                watch = await watch_prune(
                    engine,
                    deleted_before,
                    (fill.runs, fill.messages),
                    (baseline[0], baseline[1], prune_start),
                    lambda: cpu_seconds(roots),
                    args,
                )
                prune_end = watch["window_end"]
                last_due = max((at for at in due.values() if at < prune_end), default=prune_end)
                await asyncio.sleep(max(0.0, last_due - time.time()) + 1.0)
                deadline = time.monotonic() + DRAIN_S
                while time.monotonic() < deadline:
                    _, arrivals = await asyncio.to_thread(server.arrivals)
                    pending = [i for i, at in due.items() if at < prune_end and i not in arrivals]
                    if not pending:
                        break
                    await asyncio.sleep(1.0)
            _, arrivals = await asyncio.to_thread(server.arrivals)
            probe_stop.set()
            probe_samples: list[tuple[float, float]] = await asyncio.to_thread(
                probe_out.get, True, 30.0
            )
            prober.join(10)
            deleted_after = await deleted_rows(engine)
            async with engine.connect() as conn:
                old_left = await conn.scalar(
                    sa.text("SELECT count(*) FROM runs WHERE started_at < :cutoff"),
                    {"cutoff": datetime.now(UTC) - timedelta(days=RETENTION_DAYS)},
                )
            sizes_after = await table_bytes(engine)
            claim_delay = {
                "baseline": await claim_delays(engine, *baseline),
                "prune": await claim_delays(engine, prune_start, prune_end),
            }
        finally:
            await engine.dispose()
    base_lag = window_lags(arrivals, due, *baseline)
    prune_lag = window_lags(arrivals, due, prune_start, prune_end)
    return {
        "seed_jobs_s": round(seed_s, 1),
        "fill": fill.as_dict(),
        "windows_s": {
            "baseline": round(baseline[1] - baseline[0], 1),
            "gap": round(prune_start - baseline[1], 1),
            "prune": round(prune_end - prune_start, 1),
        },
        "baseline_lag_ms": base_lag,
        "prune_lag_ms": prune_lag,
        "lag_ms_by_30s": {
            "baseline": lag_series(arrivals, due, *baseline, 30.0),
            "prune": lag_series(arrivals, due, prune_start, prune_end, 30.0),
        },
        "claim_delay_ms": claim_delay,
        "bare_timer_late_ms": {
            "baseline": probe_lags(probe_samples, *baseline),
            "prune": probe_lags(probe_samples, prune_start, prune_end),
        },
        "cpu_cores": watch["cpu_cores"],
        "prune": {
            **{k: v for k, v in watch.items() if k not in ("window_end", "cpu_cores")},
            "deleted_total": {
                name: deleted_after.get(name, 0) - deleted_before.get(name, 0)
                for name in deleted_after
            },
            "old_runs_left": int(old_left or 0),
        },
        "table_bytes_before": sizes_before,
        "table_bytes_after": sizes_after,
    }


async def watch_prune(
    engine: Any,
    before: dict[str, int],
    old: tuple[int, int],
    marks: tuple[float, float, float],
    cpu: Callable[[], dict[str, float]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Poll the delete counters and the pruning lock until the pass has removed every old run
    and message (`old`) and ended, or the window cap; prints progress every 10 s. `marks` are
    the baseline start and end and the prune start: CPU use (cores) of the API, the worker
    and PostgreSQL is sampled at each and at the end."""
    old_runs, old_messages = old
    prune_start = marks[2]
    cap = prune_start + args.prune_window_s
    samples: list[tuple[float, dict[str, float]]] = []
    first_delete: float | None = None
    finished_at: float | None = None
    lock_seen: float | None = None
    last_print = 0.0
    at_start: dict[str, int] | None = None
    deleted: dict[str, int] = {}
    while True:
        now = time.time()
        if len(samples) < len(marks) and now >= marks[len(samples)]:
            samples.append((now, cpu()))
        counts = await deleted_rows(engine)
        deleted = {name: counts.get(name, 0) - before.get(name, 0) for name in counts}
        if at_start is None and now >= prune_start:
            at_start = deleted
        if first_delete is None and any(deleted.values()):
            first_delete = now
        running = await pass_running(engine)
        if lock_seen is None and running:
            lock_seen = now
        if (
            lock_seen is not None
            and not running
            and deleted.get("runs", 0) >= old_runs
            and deleted.get("messages", 0) >= old_messages
        ):
            finished_at = now
        if now - last_print >= 10:
            last_print = now
            print(f"  t={now - prune_start:+.0f} s from prune start: deleted {deleted}", flush=True)
        if finished_at is not None or now >= cap:
            break
        await asyncio.sleep(0.5)
    end = finished_at if finished_at is not None else cap
    samples.append((time.time(), cpu()))
    start_counts = at_start or {}
    return {
        "cpu_cores": _cpu_rates(samples),
        "window_end": end,
        "finished": finished_at is not None,
        "first_delete_after_s": (
            round(first_delete - prune_start, 1) if first_delete is not None else None
        ),
        "lock_seen_after_s": round(lock_seen - prune_start, 1) if lock_seen is not None else None,
        "pass_s": round(finished_at - prune_start, 1) if finished_at is not None else None,
        "deleted_in_window": {
            name: count - start_counts.get(name, 0) for name, count in deleted.items()
        },
    }


def _cpu_rates(samples: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """CPU cores used per process group in the baseline (samples 0→1) and the prune
    window (samples 2→3)."""
    if len(samples) < 4:
        return {}

    def rate(a: int, b: int) -> dict[str, float]:
        (t0, c0), (t1, c1) = samples[a], samples[b]
        return {k: round((c1[k] - c0[k]) / max(t1 - t0, 1e-6), 2) for k in c1}

    return {"baseline": rate(0, 1), "prune": rate(2, 3)}


def targets(results: dict[str, Any]) -> dict[str, Any]:
    base = results["baseline_lag_ms"].get("p99")
    pruning = results["prune_lag_ms"].get("p99")
    rise = round(pruning - base, 1) if base is not None and pruning is not None else None
    complete = (
        results["baseline_lag_ms"].get("missing") == 0
        and results["prune_lag_ms"].get("missing") == 0
    )
    return {
        "p99_rise_ms": {
            "baseline_p99_ms": base,
            "prune_p99_ms": pruning,
            "measured": rise,
            "target": TARGET_RISE_MS,
            "prune_finished_in_window": results["prune"]["finished"],
            "all_jobs_run": complete,
            "met": rise is not None
            and rise <= TARGET_RISE_MS
            and results["prune"]["finished"]
            and complete,
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-runs", type=int, default=1_000_000)
    parser.add_argument(
        "--quick", action="store_true", help="50 k runs, short windows (script check)"
    )
    parser.add_argument("--history-jobs", type=int, default=1_000, help="owners of the old runs")
    parser.add_argument(
        "--history-share",
        type=float,
        default=1.0,
        help="share of old runs with their endpoint result and message",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="due jobs per second")
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--baseline-s", type=float, default=60.0, help="baseline window")
    parser.add_argument("--prune-window-s", type=float, default=900.0, help="longest prune window")
    parser.add_argument("--job-concurrency", type=int, default=100)
    parser.add_argument("--batch", type=int, default=50, help="scheduler.max_batch_size")
    parser.add_argument(
        "--claim-ahead-ms",
        type=int,
        default=None,
        help="scheduler.claim_ahead_ms (default: the engine's default)",
    )
    args = parser.parse_args()
    if args.quick:
        args.old_runs, args.baseline_s, args.prune_window_s = 50_000, 10.0, 120.0
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()

    async def main_async() -> dict[str, Any]:
        with EndpointServer() as server:
            return await run(args, server)

    results = asyncio.run(main_async())
    write_results(
        "prune_load",
        {
            "config": {
                "scheduler.claim_ahead_ms": args.claim_ahead_ms,
                "old_runs": args.old_runs,
                "history_jobs": args.history_jobs,
                "history_share": args.history_share,
                "rate_per_s": args.rate,
                "run_retention_days": RETENTION_DAYS,
                "warmup_s": args.warmup_s,
                "baseline_s": args.baseline_s,
                "prune_window_cap_s": args.prune_window_s,
                "workers": 1,
                "scheduler.job_concurrency": args.job_concurrency,
                "scheduler.max_batch_size": args.batch,
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
