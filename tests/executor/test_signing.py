"""The executor signs every attempt and every same-origin redirect hop (issue 10)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from cronicorn.domain.models import EndpointStatus
from cronicorn.domain.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from cronicorn.executor import HttpExecutor
from tests.executor.conftest import Serve, by_id, call, endpoint, local_config, plan

SECRET = "cksig_test-secret-0123456789"
Seen = list[tuple[str, str, dict[str, str], bytes]]


def recording(
    seen: Seen, answer: Callable[[web.Request, int], web.StreamResponse]
) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path, dict(request.headers), body))
        return answer(request, len(seen))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def valid(headers: dict[str, str], body: bytes, secret: str = SECRET) -> bool:
    return verify_signature(
        secret,
        headers[TIMESTAMP_HEADER],
        body,
        headers[SIGNATURE_HEADER],
        now=int(time.time()),
    )


async def test_every_attempt_is_signed_over_the_exact_body(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    seen: Seen = []

    def answer(_: web.Request, n: int) -> web.Response:
        return web.Response(status=503 if n == 1 else 200)

    base = await serve(recording(seen, answer))
    ex = HttpExecutor(local_config(max_endpoint_retries=1))
    executors.append(ex)
    ep = endpoint("e", f"{base}/hook", method="POST", body={"a": "é", "n": 1})
    forged = call("e", headers={"x-cronicorn-signature": "sha256=forged"})
    [result] = await ex.execute(plan(forged), by_id(ep), signing_secret=SECRET)

    assert result.status is EndpointStatus.SUCCESS
    assert result.attempts == 2
    assert len(seen) == 2
    for _method, _path, headers, body in seen:
        assert body == b'{"a":"\\u00e9","n":1}'
        assert valid(headers, body)
        assert not valid(headers, body, "another-secret-0123456789")
        assert "sha256=forged" not in headers.values()


async def test_same_origin_hops_are_signed_afresh_other_origins_not(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    other: Seen = []
    elsewhere = await serve(recording(other, lambda _r, _n: web.Response(text="ok")))
    seen: Seen = []

    def answer(request: web.Request, _: int) -> web.Response:
        if request.path == "/start":
            raise web.HTTPSeeOther("/moved")  # POST -> GET, body dropped
        if request.path == "/moved":
            raise web.HTTPTemporaryRedirect(f"{elsewhere}/away")
        return web.Response(text="ok")

    base = await serve(recording(seen, answer))
    ex = HttpExecutor(local_config(max_endpoint_retries=0))
    executors.append(ex)
    ep = endpoint("e", f"{base}/start", method="POST", body={"x": 1})
    [result] = await ex.execute(plan(call("e")), by_id(ep), signing_secret=SECRET)

    assert result.status is EndpointStatus.SUCCESS
    assert [(m, p) for m, p, _, _ in seen] == [("POST", "/start"), ("GET", "/moved")]
    for _method, _path, headers, body in seen:
        assert valid(headers, body)
    assert seen[1][3] == b""
    [(_, path, headers, _body)] = other
    assert path == "/away"
    assert SIGNATURE_HEADER not in headers
    assert TIMESTAMP_HEADER not in headers


async def test_no_secret_no_signature(serve: Serve, executors: list[HttpExecutor]) -> None:
    seen: Seen = []
    base = await serve(recording(seen, lambda _r, _n: web.Response(text="ok")))
    ex = HttpExecutor(local_config())
    executors.append(ex)
    await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/x")))
    assert SIGNATURE_HEADER not in seen[0][2]
