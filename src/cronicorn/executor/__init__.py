"""HTTP execution of plans: strategies, retries, circuit breaker, SSRF guard (SPEC §7).

`HttpExecutor` implements the engine's `Executor` port on aiohttp.
"""

from cronicorn.executor.http import HttpExecutor
from cronicorn.executor.ssrf import HostPolicy, Resolver, SsrfBlocked, SystemResolver
from cronicorn.executor.strategies import run_calls, validate_calls

__all__ = [
    "HostPolicy",
    "HttpExecutor",
    "Resolver",
    "SsrfBlocked",
    "SystemResolver",
    "run_calls",
    "validate_calls",
]
