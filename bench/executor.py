"""Executor throughput versus a bare aiohttp loop, at 100 calls in flight.

A zero-latency HTTP server (raw asyncio protocol, keep-alive, fixed 2-byte answer) runs in a
separate process so the client side is what gets measured. In the same run, alternating:

- bare:      100 workers looping `session.get(url)` + `read()` on one ClientSession;
- jobs:      100 concurrent "jobs", each looping `executor.execute()` on a 10-call sequential
             plan (the engine's shape: many jobs, global max_concurrency=100);
- big_plan:  one parallel plan of many calls with concurrency_limit=100.

Two figures per scenario: wall-clock calls/s (best round) and calls per client CPU-second
(best round). The server has its own process, so on a quiet machine both agree; on a shared
machine wall-clock rates swing with other load while CPU time per call stays put, so the CPU
ratio is the one to trust there. Ratios are executor/bare, median over paired rounds.

    .venv/bin/python -m bench.executor [--requests 8000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench.common import write_results
from cronicorn.domain.models import EndpointSpec, ExecutionStrategy, Plan, PlannedCall
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import ExecutionConfig

IN_FLIGHT = 100
PLAN_SIZE = 10
_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class _Protocol(asyncio.Protocol):
    """Answers every request head with a fixed response (bodiless requests only)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        count = self._buffer.count(b"\r\n\r\n")
        if count and self._transport is not None:
            self._buffer = self._buffer[self._buffer.rfind(b"\r\n\r\n") + 4 :]
            self._transport.write(_RESPONSE * count)


def _serve(conn: Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Protocol, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def _bare(url: str, total: int) -> float:
    remaining = total

    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.get(url) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return total / (time.perf_counter() - started)


def _executor(url: str) -> tuple[HttpExecutor, dict[str, EndpointSpec]]:
    config = ExecutionConfig(max_concurrency=IN_FLIGHT, allow_private_networks=True)
    endpoints = {f"e{i}": EndpointSpec(id=f"e{i}", name=f"e{i}", url=url) for i in range(2000)}
    return HttpExecutor(config), endpoints


async def _jobs(url: str, total: int) -> float:
    executor, endpoints = _executor(url)
    plan = Plan(calls=tuple(PlannedCall(endpoint_id=f"e{i}") for i in range(PLAN_SIZE)))
    remaining = total
    try:

        async def job() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= PLAN_SIZE
                results = await executor.execute(plan, endpoints)
                assert all(r.status_code == 200 for r in results), results

        started = time.perf_counter()
        await asyncio.gather(*(job() for _ in range(IN_FLIGHT)))
        return total / (time.perf_counter() - started)
    finally:
        await executor.close()


async def _big_plan(url: str, total: int) -> float:
    executor, endpoints = _executor(url)
    size = min(total, len(endpoints))
    plan = Plan(
        calls=tuple(PlannedCall(endpoint_id=f"e{i}") for i in range(size)),
        strategy=ExecutionStrategy.PARALLEL,
        concurrency_limit=IN_FLIGHT,
    )
    try:
        started = time.perf_counter()
        done = 0
        while done < total:
            results = await executor.execute(plan, endpoints)
            assert all(r.status_code == 200 for r in results)
            done += size
        return done / (time.perf_counter() - started)
    finally:
        await executor.close()


Figures = dict[str, list[tuple[float, float]]]
"""scenario → per round (wall calls/s, calls per CPU-second)."""


async def _timed(run: Coroutine[Any, Any, float], total: int) -> tuple[float, float]:
    cpu = time.process_time()
    wall_rate = await run
    return wall_rate, total / (time.process_time() - cpu)


async def _measure(url: str, total: int, rounds: int) -> Figures:
    runs: dict[str, Callable[[str, int], Awaitable[float]]] = {
        "bare": _bare,
        "jobs": _jobs,
        "big_plan": _big_plan,
    }
    for run in runs.values():  # warm up connections, imports, caches
        await run(url, min(total, 2000))
    figures: Figures = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            figures[name].append(await _timed(run(url, total), total))  # type: ignore[arg-type]
    return figures


def _ratio(figures: Figures, name: str, index: int) -> float:
    pairs = zip(figures[name], figures["bare"], strict=True)
    return round(statistics.median(ex[index] / bare[index] for ex, bare in pairs), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8_000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{parent.recv()}/"
        figures = asyncio.run(_measure(url, args.requests, args.rounds))
    finally:
        server.terminate()
        server.join()
    write_results(
        "executor",
        {
            "in_flight": IN_FLIGHT,
            "requests_per_measurement": args.requests,
            "rounds": args.rounds,
            "calls_per_s_wall_best": {n: round(max(w for w, _ in v)) for n, v in figures.items()},
            "calls_per_cpu_s_best": {n: round(max(c for _, c in v)) for n, v in figures.items()},
            "rounds_wall_cpu": {
                n: [(round(w), round(c)) for w, c in v] for n, v in figures.items()
            },
            "ratio_wall": {n: _ratio(figures, n, 0) for n in ("jobs", "big_plan")},
            "ratio_cpu": {n: _ratio(figures, n, 1) for n in ("jobs", "big_plan")},
            "target_ratio": 0.7,
        },
    )


if __name__ == "__main__":
    main()
