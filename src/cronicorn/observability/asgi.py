"""ASGI middleware that feeds `ApiMetrics` with route *templates*, not raw paths.

Starlette/FastAPI put the matched route on `scope["route"]` while routing; the middleware
reads it after the response, so `/api/jobs/3f2a…` is counted as `/api/jobs/{job_id}` and a
scan of random URLs lands in one `<unmatched>` series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cronicorn.observability.metrics import ApiMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope, outer_root_path: str = "") -> str | None:
    """The matched route's path template, or None when nothing matched.

    Mounts add their prefix to `root_path` while routing; `outer_root_path` (the value before
    routing, e.g. a proxy prefix) is stripped so only the mount prefixes remain.
    """
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root = str(scope.get("root_path", ""))
    prefix = root[len(outer_root_path) :] if root.startswith(outer_root_path) else ""
    return f"{prefix}{path}"


class MetricsMiddleware:
    """`app.add_middleware(MetricsMiddleware, metrics=api_metrics)`; exceptions count as 500."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        outer_root_path = str(scope.get("root_path", ""))
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(
                str(scope.get("method", "GET")),
                route_template(scope, outer_root_path),
                status,
                time.perf_counter() - started,
            )
