"""The executor lives as long as its worker and calls endpoints by the hundred thousand:
what it keeps must not grow with the number of endpoints it has called. (It kept a circuit
per endpoint; the garbage collector's full passes over them grew into 100 ms pauses.)"""

from __future__ import annotations

import gc

from aiohttp import web

from cronicorn.executor import HttpExecutor

from .conftest import Serve, by_id, call, endpoint, local_config, plan

CALLS = 3_000


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_calling_many_endpoints_leaves_nothing_behind_per_endpoint(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    url = f"{await serve(app)}/ok"  # one URL: the HTTP client's own URL caches stay flat
    executor = HttpExecutor(local_config())
    executors.append(executor)

    async def run(endpoint_id: str) -> None:
        [result] = await executor.execute(
            plan(call(endpoint_id)), by_id(endpoint(endpoint_id, url))
        )
        assert result.status_code == 200

    for n in range(200):  # warm up: connections, caches, lazily built state
        await run(f"warm-{n}")
    before = _tracked()
    for n in range(CALLS):
        await run(f"endpoint-{n}")
    grown = _tracked() - before

    assert grown < CALLS // 10, f"{grown} more objects after {CALLS} endpoints"
