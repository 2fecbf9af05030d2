"""A tiny aiohttp server for the engine's `--metrics-port`: GET /metrics and GET /health.

It runs on the engine's own event loop (no thread), binds 127.0.0.1 by default and port 0
picks a free port (read it back from `.port`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from cronicorn.observability.metrics import render
from cronicorn.observability.redaction import redact

HealthCheck = Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]

log = logging.getLogger(__name__)


class MetricsServer:
    """A running metrics server; `await stop()` (or `async with`) shuts it down."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def create_metrics_app(
    registry: CollectorRegistry, health: HealthCheck | None = None
) -> web.Application:
    """The aiohttp application, for embedding in another aiohttp server."""

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = render(registry)
        # aiohttp wants the charset separately from the media type.
        media_type, _sep, params = content_type.partition(";")
        charset = params.partition("charset=")[2].strip() or None
        return web.Response(body=body, content_type=media_type.strip(), charset=charset)

    async def health_handler(_: web.Request) -> web.Response:
        payload: dict[str, Any] = {"status": "ok"}
        try:
            if health is not None:
                extra = health()
                if inspect.isawaitable(extra):
                    extra = await extra
                payload.update(redact(dict(extra)))
        except Exception as exc:  # a broken check is an unhealthy process, not a 500
            log.warning("health check failed: %s", exc, exc_info=True)
            payload = {"status": "error", "error": type(exc).__name__}
        code = 200 if payload.get("status") == "ok" else 503
        return web.json_response(payload, status=code)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health_handler)
    return app


async def start_metrics_server(
    registry: CollectorRegistry,
    host: str = "127.0.0.1",
    port: int = 0,
    health: HealthCheck | None = None,
) -> MetricsServer:
    """Serve `registry` on http://host:port/metrics and a JSON /health.

    `health()` (sync or async) returns extra fields for /health; a `status` other than "ok"
    in them, or an exception, makes /health answer 503.
    """
    runner = web.AppRunner(create_metrics_app(registry, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound_port = int(address[1])
            break
    log.info("metrics server listening on http://%s:%d", host, bound_port)
    return MetricsServer(runner, host, bound_port)
