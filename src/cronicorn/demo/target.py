"""The built-in target service that `cronicorn demo` schedules against.

A fake shop on 127.0.0.1 whose answers change over time, so the schedules the AI (or the rules
planner) choose visibly adapt within a ~30 s demo:

- ``GET /orders/backlog``: an order backlog that grows and shrinks in waves (a smooth wave
  between 0 and `max_backlog` every `wave_period_s`), with its trend and a high/normal status.
- ``GET /health``: healthy most of the time, but 503 for `outage_s` at the end of every
  `health_cycle_s` window, so failing runs back off and recover.
- ``POST /scale-up``: a hook that records each call (and its JSON body) and answers whether
  it scaled (only when the backlog is high).
- ``GET /calls``: the call counters, for the demo's summary and for tests.

Time comes from an injectable clock (seconds, monotonic), so tests are deterministic.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "DemoTarget",
    "DemoTargetConfig",
    "backlog_at",
    "health_ok_at",
    "start_target",
]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class DemoTargetConfig:
    """Shape of the fake shop's behaviour over time (seconds since the target started)."""

    wave_period_s: float = 20.0
    max_backlog: int = 120
    high_backlog: int = 50
    """Backlog above which the shop reports `status: high` and scale-up really scales."""
    health_cycle_s: float = 15.0
    outage_s: float = 5.0
    """The last `outage_s` seconds of each health cycle answer 503."""


def backlog_at(elapsed: float, config: DemoTargetConfig) -> int:
    """Backlog at `elapsed` seconds: 0 at start, peak at half a period, back to 0."""
    phase = (elapsed % config.wave_period_s) / config.wave_period_s
    return round(config.max_backlog * (1 - math.cos(2 * math.pi * phase)) / 2)


def _trend_at(elapsed: float, config: DemoTargetConfig) -> str:
    phase = (elapsed % config.wave_period_s) / config.wave_period_s
    return "growing" if phase < 0.5 else "shrinking"


def health_ok_at(elapsed: float, config: DemoTargetConfig) -> bool:
    """False during the last `outage_s` seconds of every `health_cycle_s` window."""
    return (elapsed % config.health_cycle_s) < config.health_cycle_s - config.outage_s


@dataclass
class DemoTarget:
    """A running target service; `calls` counts requests per route name."""

    base_url: str
    config: DemoTargetConfig
    clock: Clock
    started_at: float
    calls: Counter[str] = field(default_factory=Counter)
    scale_up_requests: list[Any] = field(default_factory=list)
    replicas: int = 1
    _runner: web.AppRunner | None = None

    def elapsed(self) -> float:
        return max(0.0, self.clock() - self.started_at)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- handlers ----------------------------------------------------------------------------

    async def _orders(self, _request: web.Request) -> web.Response:
        self.calls["orders"] += 1
        now = self.elapsed()
        backlog = backlog_at(now, self.config)
        return web.json_response(
            {
                "backlog": backlog,
                "trend": _trend_at(now, self.config),
                "status": "high" if backlog > self.config.high_backlog else "normal",
                "high_backlog": self.config.high_backlog,
                "replicas": self.replicas,
                "elapsed_s": round(now, 1),
            }
        )

    async def _health(self, _request: web.Request) -> web.Response:
        self.calls["health"] += 1
        now = self.elapsed()
        if health_ok_at(now, self.config):
            return web.json_response({"status": "ok", "elapsed_s": round(now, 1)})
        return web.json_response({"status": "degraded", "elapsed_s": round(now, 1)}, status=503)

    async def _scale_up(self, request: web.Request) -> web.Response:
        self.calls["scale_up"] += 1
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = await request.text()
        self.scale_up_requests.append(body)
        backlog = backlog_at(self.elapsed(), self.config)
        scaled = backlog > self.config.high_backlog
        if scaled:
            self.replicas += 1
        return web.json_response({"scaled": scaled, "replicas": self.replicas, "backlog": backlog})

    async def _calls(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.calls))


async def start_target(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    config: DemoTargetConfig | None = None,
) -> DemoTarget:
    """Start the target on `host:port` (0 picks a free port); `await target.stop()` ends it."""
    the_clock = clock or time.monotonic
    target = DemoTarget(
        base_url="",
        config=config or DemoTargetConfig(),
        clock=the_clock,
        started_at=the_clock(),
    )
    app = web.Application()
    app.router.add_get("/orders/backlog", target._orders)
    app.router.add_get("/health", target._health)
    app.router.add_post("/scale-up", target._scale_up)
    app.router.add_get("/calls", target._calls)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    target.base_url = f"http://{_url_host(bound_host)}:{bound_port}"
    target._runner = runner
    return target


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
