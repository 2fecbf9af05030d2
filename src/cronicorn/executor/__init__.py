"""HTTP execution of plans: strategies, retries, circuit breaker, SSRF guard (SPEC §7).

`HttpExecutor` implements the engine's `Executor` port on aiohttp. Names are imported lazily
(PEP 562): the settings (`cronicorn.executor.config`) are read by `EngineConfig` without
loading aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ExecutorEvents": "cronicorn.executor.events",
    "HostPolicy": "cronicorn.executor.ssrf",
    "HttpExecutor": "cronicorn.executor.http",
    "Resolver": "cronicorn.executor.ssrf",
    "SsrfBlocked": "cronicorn.executor.ssrf",
    "SystemResolver": "cronicorn.executor.ssrf",
    "run_calls": "cronicorn.executor.strategies",
    "validate_calls": "cronicorn.executor.strategies",
}

__all__ = [
    "ExecutorEvents",
    "HostPolicy",
    "HttpExecutor",
    "Resolver",
    "SsrfBlocked",
    "SystemResolver",
    "run_calls",
    "validate_calls",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from cronicorn.executor.events import ExecutorEvents
    from cronicorn.executor.http import HttpExecutor
    from cronicorn.executor.ssrf import HostPolicy, Resolver, SsrfBlocked, SystemResolver
    from cronicorn.executor.strategies import run_calls, validate_calls
