"""The endpoint server the engines call: real aiohttp on 127.0.0.1, in the test's process.

Every job gets its own paths, `/e/<job>/<endpoint>`, so calls can be counted per job and per
endpoint. Each call records when it arrived and ended (wall clock, `time.time()`) and whether
the caller hung up first; calls in flight are counted per job, so a test can assert that no
job ever ran twice at the same time (a killed engine's call ends when its socket closes, not
when the handler's delay would have ended).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

POLL_S = 0.02


@dataclass(frozen=True)
class Behavior:
    """How a job's endpoint answers: after `delay_s` (only for the first `delayed_calls`
    calls when given), with `status`."""

    delay_s: float = 0.0
    status: int = 200
    delayed_calls: int | None = None


@dataclass
class Call:
    job: str
    endpoint: str
    arrived: float
    ended: float | None = None
    disconnected: bool = False
    status: int | None = None
    idempotency_key: str | None = None


@dataclass
class EndpointServer:
    base_url: str = ""
    calls: list[Call] = field(default_factory=list)
    max_in_flight: Counter[str] = field(default_factory=Counter)
    """Per job: the most calls that were in flight at once."""
    _in_flight: Counter[str] = field(default_factory=Counter)
    _behaviors: dict[str, Behavior] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def url(self, job: str, endpoint: str = "a") -> str:
        return f"{self.base_url}/e/{job}/{endpoint}"

    def behave(self, job: str, behavior: Behavior) -> None:
        """Set how every endpoint of `job` answers from now on."""
        self._behaviors[job] = behavior

    def calls_of(self, job: str, endpoint: str | None = None) -> list[Call]:
        return [
            c for c in self.calls if c.job == job and (endpoint is None or c.endpoint == endpoint)
        ]

    def in_flight(self, job: str | None = None) -> int:
        return sum(self._in_flight.values()) if job is None else self._in_flight[job]

    def per_endpoint(self) -> Counter[tuple[str, str]]:
        return Counter((c.job, c.endpoint) for c in self.calls)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/e/{job}/{endpoint}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EndpointServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.Response:
        job, endpoint = request.match_info["job"], request.match_info["endpoint"]
        call = Call(
            job, endpoint, time.time(), idempotency_key=request.headers.get("Idempotency-Key")
        )
        nth = len(self.calls_of(job))
        self.calls.append(call)
        self._in_flight[job] += 1
        self.max_in_flight[job] = max(self.max_in_flight[job], self._in_flight[job])
        try:
            behavior = self._behaviors.get(job, Behavior())
            delayed = behavior.delayed_calls is None or nth < behavior.delayed_calls
            if delayed and behavior.delay_s > 0:
                call.disconnected = await _sleep_unless_gone(request, behavior.delay_s)
            call.status = behavior.status
            return web.json_response({"job": job, "endpoint": endpoint}, status=behavior.status)
        finally:
            self._in_flight[job] -= 1
            call.ended = time.time()


async def _sleep_unless_gone(request: web.Request, seconds: float) -> bool:
    """Sleep `seconds`; return early with True when the client hung up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        await asyncio.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))
    return False
