"""Configured headers (job defaults, endpoint headers, plan headers, bearer token) follow a
redirect only within the same origin; a hop to another scheme, host or port carries none of
them. Two real servers on 127.0.0.1, on different ports."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointStatus
from cronicorn.executor import HttpExecutor

from .conftest import Serve, by_id, call, endpoint, local_config, plan

CONFIGURED = {
    "x-default-secret": "default-value-1",
    "x-endpoint-secret": "endpoint-value-2",
    "x-plan-secret": "plan-value-3",
    "authorization": "Bearer bearer-value-4",
}


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "method": request.method,
            "body": body.decode(),
        }
    )


async def redirect(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["to"]})


def app() -> web.Application:
    application = web.Application()
    application.router.add_route("*", "/echo", echo)
    application.router.add_route("*", "/redirect", redirect)
    return application


async def call_through(
    executors: list[HttpExecutor], url: str, method: str = "GET", body: Any = None
) -> Any:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint(
        "e",
        url,
        method=method,
        body=body,
        headers={"X-Endpoint-Secret": "endpoint-value-2"},
        bearer_token="bearer-value-4",
    )
    [result] = await ex.execute(
        plan(call("e", headers={"X-Plan-Secret": "plan-value-3"})),
        by_id(ep),
        default_headers={"X-Default-Secret": "default-value-1"},
    )
    assert result.status == EndpointStatus.SUCCESS, result.error
    return result.response_body


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_cross_origin_redirect_sends_no_configured_header(
    serve: Serve, executors: list[HttpExecutor], code: int
) -> None:
    first = await serve(app())
    second = await serve(app())
    assert first != second  # same host, different ports: different origins
    url = f"{first}/redirect?code={code}&to={second}/echo"
    echoed = await call_through(executors, url, method="POST", body={"a": 1})
    seen = echoed["headers"]
    for name, value in CONFIGURED.items():
        assert name not in seen, (name, seen)
        assert value not in str(echoed)
    assert "user-agent" in seen  # the client's own header still goes
    if code in (307, 308):
        assert echoed["body"] == '{"a":1}'
        assert seen.get("content-type") == "application/json"


async def test_same_origin_redirect_keeps_configured_headers(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    base = await serve(app())
    echoed = await call_through(executors, f"{base}/redirect?to=/echo")
    for name, value in CONFIGURED.items():
        assert echoed["headers"].get(name) == value


async def test_headers_dropped_once_stay_dropped(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    """A → B → back to A: the hop home does not resurrect the headers."""
    first = await serve(app())
    second = await serve(app())
    back = f"{first}/echo"
    url = f"{first}/redirect?to={second}/redirect%3Fto%3D{back}"
    echoed = await call_through(executors, url)
    for name in CONFIGURED:
        assert name not in echoed["headers"]
