"""Shared setup for the engine benchmarks: databases, seeded jobs, a recording endpoint
server, the API server and engine workers as subprocesses.

Everything listens on 127.0.0.1 only. The endpoint server runs in its own process (so its
timestamps are not delayed by the engine's event loop) and records the first arrival time
(wall clock, `time.time()`) of every path; paths are `/j/<job index>`, so arrival minus the
job's due time is the scheduling lag.

Run an engine worker on its own (used by the benchmarks as a subprocess):

    .venv/bin/python -m bench._fixtures worker --api-url URL --api-key KEY --config JSON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.runtime import eventloop
from cronicorn.store.db import create_engine
from cronicorn.store.migrate import upgrade_database_async
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint, Job, Run, Tenant

REPO = Path(__file__).resolve().parent.parent
POSTGRES_ENV = "CRONICORN_TEST_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_ONLY = {"allowed_hosts": ["127.0.0.1"]}
"""Merged into every engine's `execution` config: endpoint traffic only to 127.0.0.1."""
HOUR_MS = 3_600_000
jobs_t = cast(sa.Table, Job.__table__)
endpoints_t = cast(sa.Table, Endpoint.__table__)
runs_t = cast(sa.Table, Run.__table__)
tenants_t = cast(sa.Table, Tenant.__table__)


def machine_load() -> dict[str, Any]:
    """`uptime`-style load averages and the core count, stored with every result."""
    one, five, fifteen = os.getloadavg()
    return {
        "loadavg_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpus": os.cpu_count(),
    }


def job_id(index: int) -> str:
    return str(uuid.UUID(int=index + 1))


def quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


# -- databases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    kind: str
    url: str
    secret_key: str

    @property
    def secret_box(self) -> SecretBox:
        return SecretBox(self.secret_key)


def asyncpg_dsn(url: str) -> str:
    """A database URL (any `postgresql+driver://`) as a DSN for `asyncpg.connect`."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_exec(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def bench_database(kind: str) -> AsyncIterator[BenchDatabase]:
    """A fresh database migrated to head: a SQLite temp file, or a new PostgreSQL database
    created next to CRONICORN_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1/test).
    Dropped afterwards."""
    key = SecretBox.generate_key()
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cronicorn-bench-") as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            await upgrade_database_async(url)
            yield BenchDatabase(kind, url, key)
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    admin = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES
    name = f"cronicorn_bench_{uuid.uuid4().hex[:10]}"
    await _pg_exec(admin, f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_database_async(url)
        yield BenchDatabase(kind, url, key)
    finally:
        await _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- seeding -----------------------------------------------------------------------------


async def seed_jobs(
    engine: AsyncEngine,
    count: int,
    *,
    due: Callable[[int], datetime],
    endpoint_url: Callable[[int], str],
    start: int = 0,
    chunk: int = 5_000,
) -> None:
    """Insert `count` active jobs (index `start`…) with one GET endpoint each, in bulk.

    Baseline interval 1 h, so a job runs once per benchmark (the rules planner schedules it
    an hour later)."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        tenant = await conn.scalar(sa.select(tenants_t.c.id).where(tenants_t.c.name == "bench"))
        if tenant is None:
            tenant = str(uuid.uuid4())
            await conn.execute(sa.insert(tenants_t).values(id=tenant, name="bench", created_at=now))
    for low in range(start, start + count, chunk):
        high = min(low + chunk, start + count)
        jobs = [_job_row(i, tenant, due(i), now) for i in range(low, high)]
        endpoints = [_endpoint_row(i, endpoint_url(i), now) for i in range(low, high)]
        async with engine.begin() as conn:
            await conn.execute(sa.insert(jobs_t), jobs)
            await conn.execute(sa.insert(endpoints_t), endpoints)
    if engine.dialect.name == "postgresql":
        # Planner statistics, as autovacuum would have them on a live database. Committed:
        # run inside a transaction that is rolled back, ANALYZE leaves none, PostgreSQL then
        # guesses ~1,000 endpoints per job and the claim's endpoint read becomes a parallel
        # sequential scan of `endpoints` once claim batches grow.
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE"))


def _job_row(i: int, tenant: str, due: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": job_id(i),
        "tenant_id": tenant,
        "name": f"bench job {i}",
        "definition": "Call the endpoint once an hour.",
        "status": "active",
        "timezone": "UTC",
        "interval_ms": HOUR_MS,
        "min_interval_ms": 10_000,
        "max_interval_ms": 7 * 24 * HOUR_MS,
        "next_run_at": due,
        "consecutive_failures": 0,
        "lease_token": 0,
        "default_headers": {},
        "created_at": now,
        "updated_at": now,
    }


def _endpoint_row(i: int, url: str, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=(1 << 100) + i)),
        "job_id": job_id(i),
        "name": "ping",
        "description": "",
        "url": url,
        "method": "GET",
        "headers": {},
        "timeout_ms": 10_000,
        "max_response_bytes": 1 << 20,
        "fire_and_forget": False,
        "created_at": now,
        "updated_at": now,
    }


def due_spread(start: datetime, rate_per_s: float) -> Callable[[int], datetime]:
    """Due times `start + i / rate`."""
    return lambda i: start + timedelta(seconds=i / rate_per_s)


async def make_all_due(engine: AsyncEngine, at: datetime | None = None) -> datetime:
    """Make every job due now (one UPDATE, plus NOTIFY on PostgreSQL and in-process
    wake-ups). Returns the due time."""
    from cronicorn.store.notify import notify_jobs_changed

    at = at or datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(sa.update(jobs_t).values(next_run_at=at))
        await notify_jobs_changed(conn)
    return at


async def schedule_due(engine: AsyncEngine, due: Sequence[datetime]) -> None:
    """Give job `i` (as seeded) the due time `due[i]`, in one transaction with the wake-ups
    of `make_all_due` — so the engines are already up and idle when the times are set."""
    from cronicorn.store.notify import notify_jobs_changed

    stmt = (
        sa.update(jobs_t)
        .where(jobs_t.c.id == sa.bindparam("job"))
        .values(next_run_at=sa.bindparam("due"))
    )
    async with engine.begin() as conn:
        await conn.execute(stmt, [{"job": job_id(i), "due": at} for i, at in enumerate(due)])
        await notify_jobs_changed(conn)


async def finished_runs(engine: AsyncEngine) -> tuple[int, int, datetime | None]:
    """(finished runs, failed runs, latest finished_at)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.count().filter(runs_t.c.status != "completed"),
                    sa.func.max(runs_t.c.finished_at),
                ).where(runs_t.c.status != "running")
            )
        ).one()
    latest = row[2]
    if isinstance(latest, str):  # SQLite aggregate: no type processing
        latest = datetime.fromisoformat(latest)
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return int(row[0]), int(row[1]), latest


async def wait_finished(
    engine: AsyncEngine, count: int, timeout_s: float
) -> tuple[int, int, datetime | None]:
    """Poll until `count` runs have finished (or the timeout); returns `finished_runs`."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = await finished_runs(engine)
        if state[0] >= count or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


# -- the endpoint server (own process) ----------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Recorder(asyncio.Protocol):
    """Answers every request head at once; records the first arrival of each path."""

    arrivals: dict[str, float] = {}
    total = 0

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self._buffer += data
        *heads, self._buffer = self._buffer.split(b"\r\n\r\n")
        out = []
        for head in heads:
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1].decode() if len(line) > 1 else "/"
            out.append(self._answer(path, now))
        if out and self._transport is not None:
            self._transport.write(b"".join(out))

    def _answer(self, path: str, now: float) -> bytes:
        if path == "/__arrivals":
            body = json.dumps({"total": _Recorder.total, "arrivals": _Recorder.arrivals}).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            return head + body
        if path == "/__reset":
            _Recorder.arrivals = {}
            _Recorder.total = 0
            return _OK
        _Recorder.total += 1
        _Recorder.arrivals.setdefault(path, now)
        return _OK


def _serve_endpoints(conn: Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Recorder, "127.0.0.1", 0, backlog=4096)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class EndpointServer:
    """The zero-latency endpoint server in a child process. Use as a context manager."""

    def __init__(self) -> None:
        self.base_url = ""
        self._process: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> EndpointServer:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_endpoints, args=(child,), daemon=True)
        self._process.start()
        self.base_url = f"http://127.0.0.1:{parent.recv()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.join()

    def url(self, index: int) -> str:
        return f"{self.base_url}/j/{index}"

    def arrivals(self) -> tuple[int, dict[int, float]]:
        """(total requests, first arrival per job index) — blocking; call off the loop or
        between measurements."""
        with urllib.request.urlopen(f"{self.base_url}/__arrivals", timeout=30) as resp:
            data = json.loads(resp.read())
        firsts = {
            int(p.rsplit("/", 1)[1]): t for p, t in data["arrivals"].items() if p.startswith("/j/")
        }
        return int(data["total"]), firsts

    def reset(self) -> None:
        urllib.request.urlopen(f"{self.base_url}/__reset", timeout=30).read()


# -- API server and worker subprocesses --------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1).read()
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout_s} s")


@contextlib.contextmanager
def api_server(db: BenchDatabase) -> Iterator[str]:
    """`cronicorn serve` on a free port (subprocess); yields its base URL."""
    with api_process(db) as (url, _):
        yield url


@contextlib.contextmanager
def api_process(
    db: BenchDatabase, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`cronicorn serve [--workers N]` on a free port; yields its base URL and process.
    `env` adds environment settings (e.g. the retention ones)."""
    port = free_port()
    env = {
        **os.environ,
        "CRONICORN_DATABASE_URL": db.url,
        "CRONICORN_SECRET_KEY": db.secret_key,
        **(env or {}),
    }
    cli = Path(sys.executable).parent / "cronicorn"
    cmd = [str(cli), "serve", "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    process = subprocess.Popen(cmd, env=env, cwd=REPO)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health", 60, process)
        yield f"http://127.0.0.1:{port}", process
    finally:
        _stop(process)


def _proc_stats() -> dict[int, tuple[int, str, float]]:
    """pid → (parent pid, command name, CPU seconds used so far) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out[int(stat.parent.name)] = (
                int(fields[1]),
                name,
                (int(fields[11]) + int(fields[12])) / tick,
            )
    return out


def cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each named group of process trees (each root pid and all
    its descendants), plus `postgres`: every PostgreSQL server process on the machine."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    for group, pids in roots.items():
        total, todo = 0.0, list(pids)
        while todo:
            pid = todo.pop()
            total += stats.get(pid, (0, "", 0.0))[2]
            todo.extend(children.get(pid, []))
        out[group] = total
    out["postgres"] = sum(cpu for _, name, cpu in stats.values() if name == "postgres")
    return out


async def create_engine_key(db: BenchDatabase) -> str:
    from cronicorn.service.keys import Keys
    from cronicorn.store.db import session_factory

    engine = create_engine(db.url)
    try:
        created = await Keys(session_factory(engine)).create("bench-engine", "engine")
    finally:
        await engine.dispose()
    return created.key


@contextlib.contextmanager
def engine_workers(
    count: int, api_url: str, api_key: str, config: dict[str, Any]
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` engine worker processes on the API (see `worker` below), stopped on exit."""
    cmd = [
        sys.executable,
        "-m",
        "bench._fixtures",
        "worker",
        "--api-url",
        api_url,
        "--api-key",
        api_key,
        "--config",
        json.dumps(config),
    ]
    processes = [subprocess.Popen(cmd, cwd=REPO) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_workers(engine: AsyncEngine, count: int, timeout_s: float = 60) -> None:
    """Until `count` workers have sent a heartbeat (they are up and idle)."""
    from cronicorn.store.tables import Worker

    workers_t = cast(sa.Table, Worker.__table__)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            live = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(workers_t)
                .where(workers_t.c.stopped_at.is_(None))
            )
        if (live or 0) >= count:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{count} workers did not start within {timeout_s} s")


def engine_config(**scheduler: Any) -> dict[str, Any]:
    """The benchmarks' engine config: rules planner, local endpoints only, quiet logs."""
    return {
        "execution": {"max_concurrency": 100, **LOCAL_ONLY},
        "scheduler": {"heartbeat_interval_ms": 500, **scheduler},
        "logger": {"level": "WARNING"},
    }


async def _run_worker(api_url: str, api_key: str, config: dict[str, Any]) -> None:
    from cronicorn.client import ApiSchedulerBackend
    from cronicorn.engine.factory import create_scheduling_engine

    backend = ApiSchedulerBackend(api_url, api_key)
    engine = create_scheduling_engine(config, backend=backend)
    try:
        await engine.run_until_signal()
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run one engine worker on the API until SIGTERM")
    worker.add_argument("--api-url", required=True)
    worker.add_argument("--api-key", required=True)
    worker.add_argument("--config", default="{}")
    args = parser.parse_args()
    quiet_logs()
    # The loop `cronicorn-engine` runs on (uvloop where installed).
    eventloop.run(_run_worker(args.api_url, args.api_key, json.loads(args.config)))


if __name__ == "__main__":
    main()
