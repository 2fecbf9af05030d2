"""Dashboard page time with a long history: one job with 100 k runs on SQLite.

Seeds a migrated SQLite database (runs bulk-inserted, a spread of schedule sources and
outcomes, endpoint results for the newest runs, messages), signs in to the dashboard and
times full page loads through the real ASGI app (routing, session lookup, queries,
templates), median of several loads. The target: the job page opens in under 300 ms.

    .venv/bin/python -m bench.dashboard                      # 100 000 runs, one a minute
    .venv/bin/python -m bench.dashboard --runs 100000 --spacing-s 1 --loads 30
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx2 as httpx
import sqlalchemy as sa

from bench._fixtures import machine_load, quiet_logs
from bench.common import summarize, write_results
from cronicorn.api import create_app
from cronicorn.service import Services
from cronicorn.service.schemas import EndpointCreate, JobCreate
from cronicorn.settings import Settings
from cronicorn.store.migrate import upgrade_database_async
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import EndpointResult, Message, Run

TARGET_MS = 300.0
CHUNK = 5000
SOURCES = ("ai", "ai", "ai", "baseline_interval", "backoff", "clamped_min", "ai_preliminary")
runs_t = cast(sa.Table, Run.__table__)
results_t = cast(sa.Table, EndpointResult.__table__)
messages_t = cast(sa.Table, Message.__table__)


def _run_row(job_id: str, i: int, started: datetime, spacing_s: float) -> dict[str, Any]:
    failed = i % 17 == 0
    source = "backoff" if failed else SOURCES[i % len(SOURCES)]
    interval = spacing_s * (1 + (i % 5))
    return {
        "id": str(uuid.UUID(int=i + 1)),
        "job_id": job_id,
        "worker_id": "bench-worker",
        "lease_token": i + 1,
        "status": "failed" if failed else "completed",
        "due_at": started,
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=120),
        "duration_ms": 120.0,
        "plan": {"endpoints_to_call": [{"endpoint_id": "e1"}], "execution_strategy": "sequential"},
        "plan_source": "ai",
        "strategy": "sequential",
        "success_count": 0 if failed else 3,
        "failure_count": 1 if failed else 0,
        "schedule": {
            "next_run_at": (started + timedelta(seconds=interval)).isoformat(),
            "source": source,
            "reasoning": f"run {i}: backlog steady, keep the interval",
            "confidence": 0.8,
        },
        "input_tokens": 900,
        "output_tokens": 120,
    }


async def seed(services: Services, db: Any, runs: int, spacing_s: float) -> tuple[str, str, float]:
    """The user key, the job id and the seconds the bulk insert took."""
    key = (await services.keys.create("bench", "user")).key
    principal = await services.keys.authenticate(key)
    assert principal is not None
    job = await services.jobs.create(
        principal,
        JobCreate(name="orders-sync", definition="Watch the backlog.", interval_ms=60_000),
    )
    for n in range(3):
        await services.endpoints.create(
            principal,
            job.id,
            EndpointCreate(name=f"endpoint-{n}", url=f"https://api.example.com/{n}"),
        )
    started = time.perf_counter()
    first = datetime.now(UTC) - timedelta(seconds=runs * spacing_s)
    async with db.begin() as conn:
        for start in range(0, runs, CHUNK):
            rows = [
                _run_row(job.id, i, first + timedelta(seconds=i * spacing_s), spacing_s)
                for i in range(start, min(runs, start + CHUNK))
            ]
            await conn.execute(sa.insert(runs_t), rows)
        newest = [
            {
                "run_id": str(uuid.UUID(int=i + 1)),
                "job_id": job.id,
                "endpoint_id": "e1",
                "position": 0,
                "status": "success",
                "status_code": 200,
                "attempts": 1,
                "started_at": first + timedelta(seconds=i * spacing_s),
                "duration_ms": 40.0,
                "response_body": {"backlog": i % 100},
            }
            for i in range(max(0, runs - 1000), runs)
        ]
        await conn.execute(sa.insert(results_t), newest)
        notes = [
            {
                "id": str(uuid.uuid4()),
                "job_id": job.id,
                "role": "assistant",
                "content": f"note {i}",
                "source": "engine",
                "created_at": first + timedelta(seconds=i * spacing_s * 100),
            }
            for i in range(min(1000, runs))
        ]
        await conn.execute(sa.insert(messages_t), notes)
    return key, job.id, time.perf_counter() - started


async def sign_in(client: httpx.AsyncClient, key: str) -> None:
    form = await client.get("/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    r = await client.post("/signin", data={"csrf_token": token.group(1), "key": key})
    assert r.status_code == 303, r.text


async def time_loads(client: httpx.AsyncClient, path: str, loads: int) -> dict[str, float]:
    for _ in range(3):  # warm caches and compiled statements
        assert (await client.get(path)).status_code == 200
    times = []
    for _ in range(loads):
        started = time.perf_counter()
        r = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    return {**summarize(times), "median": statistics.median(times)}


async def query_plans(db: Any, job_id: str) -> dict[str, list[str]]:
    """SQLite's plan for the page's run queries: each must search an index, not scan."""
    day_ago = datetime.now(UTC) - timedelta(hours=24)
    statements = {
        "runs_page": sa.select(Run.id)
        .where(Run.job_id == job_id)
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(26),
        "day_counts": sa.select(
            sa.func.count().filter(Run.status != "running"),
            sa.func.count().filter(Run.status == "completed"),
        ).where(Run.job_id == job_id, Run.started_at >= day_ago),
    }
    plans = {}
    async with db.connect() as conn:
        for name, stmt in statements.items():
            compiled = stmt.compile(db.sync_engine, compile_kwargs={"literal_binds": True})
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            plans[name] = [str(row[-1]) for row in rows]
    return plans


async def main_async(runs: int, spacing_s: float, loads: int) -> None:
    quiet_logs()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'dashboard.db'}"
        await upgrade_database_async(url)
        app = create_app(Settings(database_url=url, secret_key=SecretBox.generate_key()))
        async with app.router.lifespan_context(app):
            services: Services = app.state.services
            key, job_id, seed_s = await seed(services, app.state.db, runs, spacing_s)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await sign_in(client, key)
                newest_run = str(uuid.UUID(int=runs))
                pages = {
                    "job_page": f"/jobs/{job_id}",
                    "job_live_fragment": f"/jobs/{job_id}/live",
                    "job_page_older_runs": f"/jobs/{job_id}?before={uuid.UUID(int=runs // 2)}",
                    "jobs_list": "/jobs",
                    "run_page": f"/runs/{newest_run}",
                }
                timings = {
                    name: await time_loads(client, path, loads) for name, path in pages.items()
                }
            plans = await query_plans(app.state.db, job_id)
    job_ms = timings["job_page"]["median"]
    write_results(
        "dashboard",
        {
            "runs": runs,
            "spacing_s": spacing_s,
            "loads": loads,
            "seed_s": round(seed_s, 2),
            "pages_ms": {k: {n: round(v, 2) for n, v in t.items()} for k, t in timings.items()},
            "job_page_median_ms": round(job_ms, 2),
            "target_ms": TARGET_MS,
            "meets_target": job_ms < TARGET_MS,
            "query_plans": plans,
            "load": machine_load(),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--spacing-s", type=float, default=60.0, help="seconds between runs")
    parser.add_argument("--loads", type=int, default=20, help="timed loads per page")
    args = parser.parse_args()
    asyncio.run(main_async(args.runs, args.spacing_s, args.loads))


if __name__ == "__main__":
    main()
