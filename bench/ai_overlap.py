"""AI overlap: do a worker's AI calls overlap, so slow models don't serialise jobs?

300 jobs due at once, each with one local endpoint; the OpenAI planner talks to the fake
OpenAI-compatible server (`tests/fakes/fake_openai.py`, auto mode, own process) which
answers every call after 500 ms. Each run makes two AI calls (plan, schedule), so with
`scheduler.job_concurrency` = C the ideal total is `2 * 0.5 s * 300 / C`.

Baseline in the same run: the same 600 calls made straight with the `openai` SDK (two
sequential calls per "job", C jobs at once) — what the SDK and the fake cost without the
engine. In-process engine on SQLite.

    .venv/bin/python -m bench.ai_overlap [--quick] [--jobs 300] [--job-concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, cast

import openai
import sqlalchemy as sa

from bench._fixtures import (
    EndpointServer,
    bench_database,
    engine_config,
    machine_load,
    make_all_due,
    quiet_logs,
    runs_t,
    seed_jobs,
    wait_finished,
)
from bench.common import write_results
from cronicorn.ai.schemas import PLAN_SCHEMA_NAME
from cronicorn.store.db import create_engine

TARGET_RATIO = 1.3


def _serve_fake(conn: Connection, latency_s: float) -> None:
    from tests.fakes.fake_openai import FakeOpenAI

    async def main() -> None:
        async with FakeOpenAI(auto=True, next_run_s=3600, latency_s=latency_s) as fake:
            conn.send(fake.base_url)

            def answer() -> None:  # any message asks: how many requests so far?
                conn.recv()
                conn.send(len(fake.requests))

            asyncio.get_running_loop().add_reader(conn.fileno(), answer)
            await asyncio.Event().wait()

    asyncio.run(main())


class FakeProcess:
    def __init__(self, latency_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_fake, args=(child, latency_s), daemon=True)

    def __enter__(self) -> FakeProcess:
        self._process.start()
        self.base_url = cast(str, self._parent.recv())
        return self

    def requests(self) -> int:
        """Chat completions the fake has answered so far."""
        self._parent.send("count")
        return cast(int, self._parent.recv())

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join()


async def bare_sdk(base_url: str, jobs: int, concurrency: int) -> float:
    """Two sequential chat completions per job, `concurrency` jobs at once; seconds."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    fmt: Any = {
        "type": "json_schema",
        "json_schema": {"name": PLAN_SCHEMA_NAME, "strict": False, "schema": {}},
    }
    gate = asyncio.Semaphore(concurrency)

    async def job() -> None:
        async with gate:
            for _ in range(2):
                await client.chat.completions.create(
                    model="fake",
                    messages=[{"role": "user", "content": "Allowed endpoint_id values: []"}],
                    response_format=fmt,
                )

    started = time.monotonic()
    await asyncio.gather(*(job() for _ in range(jobs)))
    elapsed = time.monotonic() - started
    await client.close()
    return elapsed


async def engine_run(
    base_url: str, server: EndpointServer, jobs: int, concurrency: int
) -> dict[str, Any]:
    from cronicorn.engine.factory import create_scheduling_engine
    from cronicorn.store.local_backend import LocalSchedulerBackend

    config = engine_config(job_concurrency=concurrency, max_batch_size=min(concurrency, 50))
    config["ai_agent"] = {"api_key": "bench", "base_url": base_url, "model": "fake"}
    async with bench_database("sqlite") as db:
        engine = create_engine(db.url)
        far = datetime.now(UTC) + timedelta(days=1)
        await seed_jobs(engine, jobs, due=lambda _: far, endpoint_url=server.url)
        backend = LocalSchedulerBackend(engine, db.secret_box)
        try:
            async with create_scheduling_engine(config, backend=backend) as scheduler:
                await asyncio.sleep(0.5)
                started = await make_all_due(engine)
                done, failed, last = await wait_finished(engine, jobs, 300)
                stats = scheduler.get_state().stats
            async with engine.connect() as conn:
                sources: dict[Any, Any] = dict(
                    (
                        await conn.execute(
                            sa.select(runs_t.c.plan_source, sa.func.count()).group_by(
                                runs_t.c.plan_source
                            )
                        )
                    ).all()
                )
        finally:
            await backend.close()
            await engine.dispose()
    elapsed = ((last or datetime.now(UTC)) - started).total_seconds()
    return {
        "finished_runs": done,
        "failed_runs": failed,
        "plan_sources": {str(k): int(v) for k, v in sources.items()},
        "engine_stats_ai_agent_calls": stats.ai_agent_calls,
        "fallbacks": stats.fallbacks,
        "elapsed_s": round(elapsed, 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ideal = 2 * args.latency * args.jobs / args.job_concurrency
    with FakeProcess(args.latency) as fake, EndpointServer() as server:
        bare = await bare_sdk(fake.base_url, args.jobs, args.job_concurrency)
        print(f"bare SDK: {bare:.2f} s (ideal {ideal:.2f} s)", flush=True)
        before = fake.requests()
        figures = await engine_run(fake.base_url, server, args.jobs, args.job_concurrency)
        figures["fake_openai_requests"] = fake.requests() - before
        print(f"engine: {figures}", flush=True)
    return {
        "ideal_s": round(ideal, 3),
        "bare_sdk_s": round(bare, 3),
        "engine": figures,
        "engine_vs_ideal": round(figures["elapsed_s"] / ideal, 3),
        "engine_vs_bare_sdk": round(figures["elapsed_s"] / bare, 3),
        "bare_sdk_vs_ideal": round(bare / ideal, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2 x job_concurrency jobs")
    parser.add_argument("--job-concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.5, help="fake model, s per call")
    args = parser.parse_args()
    if args.quick:
        args.jobs = 2 * args.job_concurrency
    quiet_logs()
    load_before = machine_load()
    started = time.monotonic()
    results = asyncio.run(run(args))
    ratio = results["engine_vs_ideal"]
    write_results(
        "ai_overlap",
        {
            "config": {
                "jobs": args.jobs,
                "scheduler.job_concurrency": args.job_concurrency,
                "fake_latency_s": args.latency,
                "database": "sqlite (in-process engine)",
            },
            "load_before": load_before,
            "load_after": machine_load(),
            "wall_s": round(time.monotonic() - started, 1),
            **results,
            "target": {"max_ratio_vs_ideal": TARGET_RATIO, "met": ratio <= TARGET_RATIO},
        },
    )


if __name__ == "__main__":
    main()
