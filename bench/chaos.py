"""Fault injection: the API and N engine workers on PostgreSQL, `kill -9`ed on a schedule.

    .venv/bin/python -m bench.chaos --jobs 3000 --interval-s 60 --workers 3 \\
        --duration-s 360 --worker-kills 12 --api-kills 3

What runs: a fresh PostgreSQL database (created next to CRONICORN_TEST_POSTGRES_URL, dropped
afterwards), `cronicorn serve` and `--workers` times `cronicorn-engine start` as subprocesses (the
rules planner: no AI), and a recording target HTTP server on 127.0.0.1 in this process. Each
job has one GET endpoint on the target (answering after `--call-ms`) and a baseline interval
of `--interval-s`; first due times are spread over the first interval. During
`--duration-s` the script `kill -9`s workers (round robin, each restarted at once under a new
worker id) and the API (restarted at once on the same port), evenly spaced. Then it waits
`--settle-s` (default: lease + 15 s) without faults, snapshots the database, stops everything
gracefully and reports:

- runs expected (nominal: due times in the window) and runs done (distinct due times with a
  completed or failed run);
- duplicates: endpoint calls beyond the first for one due time of one job (a call is
  attributed to a due time by its Idempotency-Key), by cause — a worker kill (the first
  run's worker was killed between the due time's first and last run), an API restart (an
  API kill fell between them) or other — and whether each carried the same key;
- keys that are not `uuid5(job, due time, endpoint)` of any run of the job;
- completed twice (two completed/failed runs for one due time), lost (a due time that was
  started but has no completed, failed or running run, older than the settle window), stuck
  (a job overdue by more than the settle window, or holding a lease expired that long), left
  running (runs still `running` after the graceful stop);
- recovery after each worker kill: from the kill to the start of the re-run of the last of
  its in-flight jobs (should be ≤ lease + 5 s), and runs in flight at the kill;
- API downtime per restart (kill → /health answers) and 5xx answers in the API access logs;
- "lease lost" warnings in the worker logs.

`run_chaos(ChaosParams(...))` is the same run as a function (tests/e2e/test_chaos.py runs a
short version in CI). Logs of every process stay in `--log-dir` (a temp dir by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._fixtures import REPO, BenchDatabase, bench_database, free_port, machine_load
from bench.common import percentile
from cronicorn.domain.idempotency import IDEMPOTENCY_HEADER, idempotency_key
from cronicorn.engine.config import SchedulerConfig
from cronicorn.store.db import create_engine
from cronicorn.store.tables import Endpoint, Job, Run, Tenant

BIN = Path(sys.executable).parent
jobs_t = cast(sa.Table, Job.__table__)
endpoints_t = cast(sa.Table, Endpoint.__table__)
runs_t = cast(sa.Table, Run.__table__)
tenants_t = cast(sa.Table, Tenant.__table__)
DEFAULT_LEASE_MS = SchedulerConfig().stale_lock_threshold_ms
ACCESS_5XX = re.compile(r'" 5\d\d\b')
FINISHED = ("completed", "failed")


@dataclass
class ChaosParams:
    jobs: int = 3_000
    interval_s: float = 60.0
    workers: int = 3
    duration_s: float = 360.0
    worker_kills: int = 12
    api_kills: int = 3
    lease_ms: int | None = None
    """None: the engine's default (`CRONICORN_STALE_LOCK_THRESHOLD_MS` unset)."""
    call_ms: int = 200
    settle_s: float | None = None
    job_concurrency: int = 50
    log_dir: str | None = None
    quiet: bool = False

    @property
    def lease_s(self) -> float:
        return (self.lease_ms or DEFAULT_LEASE_MS) / 1000

    @property
    def settle(self) -> float:
        return self.settle_s if self.settle_s is not None else self.lease_s + 15


@dataclass
class Kill:
    at: float
    target: str
    """`api` or a worker id."""
    restarted_in_s: float | None = None
    """API: kill → /health answers again."""
    in_flight: int = 0
    recovery_s: float | None = None
    api_down_meanwhile: bool = False
    """An API outage overlapped the lease window after this kill: nobody could claim."""


@dataclass
class ChaosReport:
    params: dict[str, Any]
    runs_expected: int = 0
    runs_done: int = 0
    calls: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)
    duplicates_with_repeated_key: dict[str, int] = field(default_factory=dict)
    key_mismatches: int = 0
    completed_twice: int = 0
    lost: int = 0
    stuck: int = 0
    left_running: int = 0
    worker_kills: list[Kill] = field(default_factory=list)
    api_kills: list[Kill] = field(default_factory=list)
    api_5xx: int = 0
    api_requests: int = 0
    lease_lost_warnings: int = 0
    runs_in_flight_at_kills: int = 0
    max_recovery_s: float | None = None
    max_recovery_without_api_outage_s: float | None = None
    lag_s: dict[str, float] = field(default_factory=dict)
    """Scheduling lag (first run's start minus due time): p50, p99, max."""
    load: dict[str, Any] = field(default_factory=dict)
    log_dir: str = ""

    def rows(self) -> list[tuple[str, str]]:
        recov = [k.recovery_s for k in self.worker_kills if k.recovery_s is not None]
        downs = [k.restarted_in_s for k in self.api_kills if k.restarted_in_s is not None]
        dup = self.duplicates
        rep = self.duplicates_with_repeated_key
        return [
            ("runs expected (nominal) / done", f"{self.runs_expected} / {self.runs_done}"),
            ("endpoint calls", str(self.calls)),
            (
                "duplicates: worker kill / API restart / other",
                f"{dup.get('worker_kill', 0)} / {dup.get('api_restart', 0)} / "
                f"{dup.get('other', 0)}",
            ),
            (
                "… of which with a repeated Idempotency-Key",
                f"{rep.get('worker_kill', 0)} / {rep.get('api_restart', 0)} / "
                f"{rep.get('other', 0)}",
            ),
            ("runs in flight at the worker kills", str(self.runs_in_flight_at_kills)),
            ("keys not matching job + due time + endpoint", str(self.key_mismatches)),
            ("completed twice", str(self.completed_twice)),
            ("lost", str(self.lost)),
            ("stuck", str(self.stuck)),
            ("left running", str(self.left_running)),
            (
                "worker kills / recovery max (s)",
                f"{len(self.worker_kills)} / "
                + (f"{max(recov):.1f}" if recov else "n/a")
                + f" (lease {self.params['lease_s']:.0f} s)",
            ),
            (
                "… recovery max for kills with no API outage in the lease window (s)",
                _fmt(self.max_recovery_without_api_outage_s),
            ),
            (
                "scheduling lag p50 / p99 / max (s)",
                " / ".join(_fmt(self.lag_s.get(k)) for k in ("p50", "p99", "max")),
            ),
            (
                "API kills / downtime per restart (s)",
                f"{len(self.api_kills)} / " + ", ".join(f"{d:.1f}" for d in downs),
            ),
            ("API 5xx / requests", f"{self.api_5xx} / {self.api_requests}"),
            ('"lease lost" warnings', str(self.lease_lost_warnings)),
        ]

    def kills_table(self) -> str:
        lines = ["| worker kill at (s) | runs in flight | recovery (s) | API down meanwhile |"]
        lines.append("|---|---|---|---|")
        start = self.params.get("chaos_start", 0.0)
        for k in self.worker_kills:
            lines.append(
                f"| {k.at - start:.0f} | {k.in_flight} | {_fmt(k.recovery_s)} | "
                f"{'yes' if k.api_down_meanwhile else 'no'} |"
            )
        return "\n".join(lines)

    def table(self) -> str:
        lines = ["| measure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


# -- the recording target ------------------------------------------------------------------


@dataclass
class Call:
    job: int
    key: str | None
    arrived: float
    ended: float | None = None


class Target:
    """GET /t/{job index}: answers 200 after `call_ms`; records every call."""

    def __init__(self, call_ms: int) -> None:
        self.call_s = call_ms / 1000
        self.calls: list[Call] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/t/{job}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        call = Call(int(request.match_info["job"]), request.headers.get(IDEMPOTENCY_HEADER), 0)
        call.arrived = time.time()
        self.calls.append(call)
        try:
            await asyncio.sleep(self.call_s)
        finally:
            call.ended = time.time()
        return web.json_response({"ok": True})


# -- processes -----------------------------------------------------------------------------


class Cluster:
    """`cronicorn serve` and the workers; every process is ours and ended by its pid."""

    def __init__(self, db: BenchDatabase, params: ChaosParams, log_dir: Path) -> None:
        self.db = db
        self.params = params
        self.log_dir = log_dir
        self.port = free_port()
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.generation: Counter[int] = Counter()
        self.engine_key = ""
        self._spawned = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRONICORN_", "OPENAI_"))}
        env.update(NO_COLOR="1", **extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self._spawned += 1
        log = self.log_dir / f"{self._spawned:03d}-{name}.log"
        with log.open("wb") as out:
            return subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def start_api(self) -> None:
        argv = [str(BIN / "cronicorn"), "serve", "--port", str(self.port), "--log-level", "info"]
        env = self._env(CRONICORN_DATABASE_URL=self.db.url, CRONICORN_SECRET_KEY=self.db.secret_key)
        self.api = self._spawn("serve", argv, env)

    async def wait_api(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.api is not None
                assert self.api.poll() is None, "cronicorn serve exited"
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        f"{self.api_url}/health", timeout=aiohttp.ClientTimeout(1)
                    ) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise TimeoutError("cronicorn serve did not answer /health")

    def start_worker(self, slot: int) -> str:
        self.generation[slot] += 1
        worker_id = f"w{slot}.{self.generation[slot]}"
        p = self.params
        env = self._env(
            CRONICORN_API_URL=self.api_url,
            CRONICORN_API_KEY=self.engine_key,
            CRONICORN_ALLOWED_HOSTS="127.0.0.1",
            CRONICORN_LOG_LEVEL="WARNING",
            CRONICORN_MAX_ENDPOINT_RETRIES="0",
            CRONICORN_JOB_CONCURRENCY=str(p.job_concurrency),
            CRONICORN_MAX_CONCURRENCY=str(p.job_concurrency),
            CRONICORN_MAX_BATCH_SIZE=str(p.job_concurrency),
            CRONICORN_PROCESSING_INTERVAL_MS="5000",
        )
        if p.lease_ms is not None:
            env["CRONICORN_STALE_LOCK_THRESHOLD_MS"] = str(p.lease_ms)
        argv = [str(BIN / "cronicorn-engine"), "start", "--worker-id", worker_id]
        self.workers[worker_id] = self._spawn(worker_id, argv, env)
        return worker_id

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(30)

    async def stop_gracefully(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(process)

    def kill_all(self) -> None:
        for process in [*self.workers.values(), *([self.api] if self.api else [])]:
            self.kill(process)


async def live_workers(engine: AsyncEngine) -> set[str]:
    from cronicorn.store.tables import Worker

    workers_t = cast(sa.Table, Worker.__table__)
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(workers_t.c.id).where(workers_t.c.stopped_at.is_(None)))
    return {row[0] for row in rows}


# -- seeding -------------------------------------------------------------------------------


def endpoint_id(index: int) -> str:
    return str(uuid.UUID(int=(1 << 100) + index))


def job_id(index: int) -> str:
    return str(uuid.UUID(int=index + 1))


async def seed(engine: AsyncEngine, params: ChaosParams, target: Target, start: datetime) -> None:
    interval_ms = int(params.interval_s * 1000)
    now = datetime.now(UTC)
    tenant = str(uuid.uuid4())
    jobs, endpoints = [], []
    for i in range(params.jobs):
        due = start + timedelta(seconds=params.interval_s * i / params.jobs)
        jobs.append(
            {
                "id": job_id(i),
                "tenant_id": tenant,
                "name": f"chaos {i}",
                "definition": "Call the target at a steady interval.",
                "status": "active",
                "timezone": "UTC",
                "interval_ms": interval_ms,
                "min_interval_ms": min(interval_ms, 10_000),
                "max_interval_ms": interval_ms,
                "next_run_at": due,
                "consecutive_failures": 0,
                "lease_token": 0,
                "default_headers": {},
                "created_at": now,
                "updated_at": now,
            }
        )
        endpoints.append(
            {
                "id": endpoint_id(i),
                "job_id": job_id(i),
                "name": "target",
                "description": "",
                "url": f"{target.base_url}/t/{i}",
                "method": "GET",
                "headers": {},
                "timeout_ms": 10_000,
                "max_response_bytes": 1 << 20,
                "fire_and_forget": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with engine.begin() as conn:
        await conn.execute(sa.insert(tenants_t).values(id=tenant, name="chaos", created_at=now))
        for low in range(0, len(jobs), 2_000):
            await conn.execute(sa.insert(jobs_t), jobs[low : low + 2_000])
            await conn.execute(sa.insert(endpoints_t), endpoints[low : low + 2_000])
    async with engine.connect() as conn:
        await conn.execute(sa.text("ANALYZE"))


# -- the run ---------------------------------------------------------------------------------


def kill_plan(params: ChaosParams) -> list[str]:
    """The order of faults: API kills spread evenly among the worker kills."""
    total = params.worker_kills + params.api_kills
    api_at = {round((j + 1) * total / (params.api_kills + 1)) - 1 for j in range(params.api_kills)}
    plan: list[str] = []
    worker = 0
    for position in range(total):
        if position in api_at and plan.count("api") < params.api_kills:
            plan.append("api")
        else:
            plan.append(f"worker:{worker % params.workers}")
            worker += 1
    return plan


def say(params: ChaosParams, message: str) -> None:
    if not params.quiet:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def run_chaos(params: ChaosParams) -> ChaosReport:
    log_dir = Path(params.log_dir or tempfile.mkdtemp(prefix="cronicorn-chaos-"))
    os.makedirs(log_dir, exist_ok=True)
    report = ChaosReport(params={**asdict(params), "lease_s": params.lease_s}, log_dir=str(log_dir))
    target = Target(params.call_ms)
    await target.start()
    try:
        async with bench_database("postgres") as db:
            engine = create_engine(db.url)
            cluster = Cluster(db, params, log_dir)
            try:
                await _run(params, report, target, db, engine, cluster)
            finally:
                cluster.kill_all()
                await engine.dispose()
    finally:
        await target.close()
    report.load = machine_load()
    return report


async def _run(
    params: ChaosParams,
    report: ChaosReport,
    target: Target,
    db: BenchDatabase,
    engine: AsyncEngine,
    cluster: Cluster,
) -> None:
    from bench._fixtures import create_engine_key

    cluster.engine_key = await create_engine_key(db)
    cluster.start_api()
    slots = list(range(params.workers))
    for slot in slots:
        cluster.start_worker(slot)
    await cluster.wait_api()
    deadline = time.monotonic() + 180
    while len(await live_workers(engine)) < params.workers:
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        await asyncio.sleep(0.2)
    say(params, f"API and {params.workers} workers up; seeding {params.jobs} jobs")
    t_start = datetime.now(UTC) + timedelta(seconds=2)
    await seed(engine, params, target, t_start)
    chaos_start = time.time()
    report.params["chaos_start"] = chaos_start

    plan = kill_plan(params)
    gap = params.duration_s / (len(plan) + 1)
    current = {slot: f"w{slot}.1" for slot in slots}
    restarts: list[asyncio.Task[None]] = []
    for n, fault in enumerate(plan, start=1):
        await asyncio.sleep(max(0.0, chaos_start + n * gap - time.time()))
        if fault == "api":
            assert cluster.api is not None
            kill = Kill(time.time(), "api")
            cluster.kill(cluster.api)
            cluster.start_api()
            report.api_kills.append(kill)
            restarts.append(asyncio.create_task(_back_up(params, cluster, kill)))
            say(params, "killed the API; restarting it")
        else:
            slot = int(fault.split(":")[1])
            victim = current[slot]
            kill = Kill(time.time(), victim)
            cluster.kill(cluster.workers[victim])
            current[slot] = cluster.start_worker(slot)
            report.worker_kills.append(kill)
            say(params, f"killed worker {victim}; started {current[slot]}")
    await asyncio.sleep(max(0.0, chaos_start + params.duration_s - time.time()))
    await asyncio.gather(*restarts)
    chaos_end = time.time()
    say(params, f"faults done; settling {params.settle:.0f} s")
    await asyncio.sleep(params.settle)
    snapshot = time.time()
    runs, jobs = await _read(engine)

    for worker_id in current.values():
        await cluster.stop_gracefully(cluster.workers[worker_id], 60)
    assert cluster.api is not None
    await cluster.stop_gracefully(cluster.api, 30)
    after, _ = await _read(engine)
    report.left_running = sum(1 for r in after if r["status"] == "running")
    _analyse(params, report, runs, jobs, t_start.timestamp(), chaos_end, snapshot)
    _calls(report, target, _group_by_due(after))  # every call, including after the snapshot
    _scan_logs(report, cluster.log_dir)


async def _back_up(params: ChaosParams, cluster: Cluster, kill: Kill) -> None:
    """Wait (in the background: the fault schedule goes on) until the API answers again."""
    await cluster.wait_api()
    kill.restarted_in_s = time.time() - kill.at
    say(params, f"the API answers again {kill.restarted_in_s:.1f} s after its kill")


async def _read(engine: AsyncEngine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cols = runs_t.c
    async with engine.connect() as conn:
        runs = [
            dict(r)
            for r in (
                await conn.execute(
                    sa.select(
                        cols.id,
                        cols.job_id,
                        cols.due_at,
                        cols.status,
                        cols.worker_id,
                        cols.started_at,
                        cols.finished_at,
                        cols.error,
                    )
                )
            ).mappings()
        ]
        j = jobs_t.c
        jobs = [
            dict(r)
            for r in (
                await conn.execute(
                    sa.select(j.id, j.next_run_at, j.lease_owner, j.lease_expires_at)
                )
            ).mappings()
        ]
    return runs, jobs


def _group_by_due(runs: list[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    by_due: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_due[(run["job_id"], run["due_at"].timestamp())].append(run)
    return by_due


def _analyse(
    params: ChaosParams,
    report: ChaosReport,
    runs: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    first_due: float,
    chaos_end: float,
    snapshot: float,
) -> None:
    grace = params.settle
    report.runs_expected = sum(
        int((chaos_end - (first_due + params.interval_s * i / params.jobs)) // params.interval_s)
        + 1
        for i in range(params.jobs)
        if first_due + params.interval_s * i / params.jobs <= chaos_end
    )
    by_due: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_due[(run["job_id"], run["due_at"].timestamp())].append(run)
        by_job[run["job_id"]].append(run)
    for job_runs in by_job.values():
        job_runs.sort(key=lambda r: r["started_at"])
    report.runs_done = sum(
        1 for group in by_due.values() if any(r["status"] in FINISHED for r in group)
    )
    report.completed_twice = sum(
        1 for group in by_due.values() if sum(r["status"] in FINISHED for r in group) > 1
    )
    report.lost = sum(
        1
        for (_, due), group in by_due.items()
        if due < snapshot - grace and not any(r["status"] in (*FINISHED, "running") for r in group)
    )
    report.stuck = sum(
        1
        for job in jobs
        if (job["next_run_at"] is not None and job["next_run_at"].timestamp() < snapshot - grace)
        or (
            job["lease_owner"] is not None
            and job["lease_expires_at"] is not None
            and job["lease_expires_at"].timestamp() < snapshot - grace
        )
    )
    lags = [
        min(r["started_at"] for r in group).timestamp() - due for (_, due), group in by_due.items()
    ]
    if lags:
        report.lag_s = {
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "max": max(lags),
        }
    _recovery(report, by_job)


def _calls(
    report: ChaosReport,
    target: Target,
    by_due: dict[tuple[str, float], list[dict[str, Any]]],
) -> None:
    """Every call is attributed by its key to the due time it was made for: a key that is
    not `uuid5(job, due time of one of the job's runs, endpoint)` is a mismatch."""
    report.calls = len(target.calls)
    index: dict[str, tuple[str, float]] = {}
    for (jid, due_ts), group in by_due.items():
        number = uuid.UUID(jid).int - 1
        index[idempotency_key(jid, group[0]["due_at"], endpoint_id(number))] = (jid, due_ts)
    per_due: dict[tuple[str, float], list[Call]] = defaultdict(list)
    for call in target.calls:
        due_key = index.get(call.key or "")
        if due_key is None or due_key[0] != job_id(call.job):
            report.key_mismatches += 1
            continue
        per_due[due_key].append(call)
    duplicates: Counter[str] = Counter()
    repeated: Counter[str] = Counter()
    kills = [(k.at, k.target) for k in report.worker_kills]
    api = [k.at for k in report.api_kills]
    for key, calls in per_due.items():
        if len(calls) < 2:
            continue
        group = sorted(by_due[key], key=lambda r: r["started_at"])
        first, later = group[0], group[-1]
        s1, s2 = first["started_at"].timestamp(), later["started_at"].timestamp()
        if any(w == first["worker_id"] and s1 <= at <= s2 for at, w in kills):
            cause = "worker_kill"
        elif any(s1 <= at <= s2 for at in api):
            cause = "api_restart"
        else:
            cause = "other"
        duplicates[cause] += len(calls) - 1
        if len({c.key for c in calls}) == 1:
            repeated[cause] += len(calls) - 1
    report.duplicates = {c: duplicates[c] for c in ("worker_kill", "api_restart", "other")}
    report.duplicates_with_repeated_key = {
        c: repeated[c] for c in ("worker_kill", "api_restart", "other")
    }


def _recovery(report: ChaosReport, by_job: dict[str, list[dict[str, Any]]]) -> None:
    """Per worker kill: its runs that were still running at the kill (aborted when another
    worker took the job over) and how long until the last of them started again."""
    for kill in report.worker_kills:
        waits: list[float] = []
        for job_runs in by_job.values():
            for index, run in enumerate(job_runs):
                if run["worker_id"] != kill.target or run["status"] == "completed":
                    continue
                if run["status"] != "aborted" or run["started_at"].timestamp() > kill.at:
                    continue
                later = job_runs[index + 1 :]
                if later:
                    waits.append(later[0]["started_at"].timestamp() - kill.at)
        kill.in_flight = len(waits)
        kill.recovery_s = max(waits) if waits else None
    report.runs_in_flight_at_kills = sum(k.in_flight for k in report.worker_kills)
    recov = [k.recovery_s for k in report.worker_kills if k.recovery_s is not None]
    report.max_recovery_s = max(recov) if recov else None
    lease_s = float(report.params["lease_s"])
    for kill in report.worker_kills:
        kill.api_down_meanwhile = any(
            api.at <= kill.at + lease_s + 5 and kill.at <= api.at + (api.restarted_in_s or 0)
            for api in report.api_kills
        )
    clean = [
        k.recovery_s
        for k in report.worker_kills
        if k.recovery_s is not None and not k.api_down_meanwhile
    ]
    report.max_recovery_without_api_outage_s = max(clean) if clean else None


def _scan_logs(report: ChaosReport, log_dir: Path) -> None:
    for log in sorted(log_dir.glob("*.log")):
        text = log.read_text(errors="replace")
        if log.name.endswith("-serve.log"):
            for line in text.splitlines():
                if '"' in line and "HTTP/1.1" in line:
                    report.api_requests += 1
                    if ACCESS_5XX.search(line):
                        report.api_5xx += 1
        else:
            report.lease_lost_warnings += text.count("lease lost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ChaosParams()
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--interval-s", type=float, default=defaults.interval_s)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s)
    parser.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
    parser.add_argument("--api-kills", type=int, default=defaults.api_kills)
    parser.add_argument("--lease-ms", type=int, default=None, help="default: the engine's")
    parser.add_argument("--call-ms", type=int, default=defaults.call_ms)
    parser.add_argument("--settle-s", type=float, default=None, help="default: lease + 15 s")
    parser.add_argument("--job-concurrency", type=int, default=defaults.job_concurrency)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args(argv)
    params = ChaosParams(**{k.replace("-", "_"): v for k, v in vars(args).items()})
    started = time.monotonic()
    report = asyncio.run(run_chaos(params))
    print()
    print(report.table())
    print()
    print(report.kills_table())
    wall = time.monotonic() - started
    print(f"\nwall time {wall:.0f} s; load {report.load}; logs {report.log_dir}")
    from bench.common import write_results

    data = asdict(report)
    data["wall_s"] = round(time.monotonic() - started, 1)
    write_results("chaos", json.loads(json.dumps(data, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
