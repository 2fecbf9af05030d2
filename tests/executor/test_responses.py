"""Response capture: byte cap with bounded memory, charsets, JSON, text cap, lying servers."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor

from .conftest import RawHandler, RawServe, Serve, by_id, call, endpoint, local_config, plan

CHUNK = 64 * 1024
SENT = web.AppKey("sent", list[int])


async def huge(request: web.Request) -> web.StreamResponse:
    """Streams up to 100 MB lazily, counting what it managed to send."""
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = 100 * 1024 * 1024
    await resp.prepare(request)
    chunk = b"x" * CHUNK
    sent = 0
    try:
        while sent < 100 * 1024 * 1024:
            await resp.write(chunk)
            sent += CHUNK
    except (ConnectionError, asyncio.CancelledError):
        pass
    request.app[SENT].append(sent)
    return resp


def body_app(routes: dict[str, web.Response]) -> web.Application:
    app = web.Application()
    for path, response in routes.items():

        async def handler(_: web.Request, r: web.Response = response) -> web.Response:
            return web.Response(body=r.body, status=r.status, headers=r.headers)

        app.router.add_get(path, handler)
    return app


@pytest.fixture
async def ex(executors: list[HttpExecutor]) -> HttpExecutor:
    executor = HttpExecutor(local_config(response_content_length_limit=50, max_endpoint_retries=0))
    executors.append(executor)
    return executor


async def test_100mb_stream_stops_at_cap_with_bounded_memory(
    serve: Serve, ex: HttpExecutor
) -> None:
    app = web.Application()
    app[SENT] = []
    app.router.add_get("/huge", huge)
    base = await serve(app)
    cap = 256 * 1024
    ep = endpoint("e", f"{base}/huge", max_response_bytes=cap)
    tracemalloc.start()
    try:
        [result] = await ex.execute(plan(call("e")), by_id(ep))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == EndpointStatus.SUCCESS
    assert result.truncated is True
    assert cap <= result.response_bytes <= cap + CHUNK
    assert len(result.response_body) == 50  # stored text capped too
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"
    for _ in range(100):  # the server notices the closed connection
        if app[SENT]:
            break
        await asyncio.sleep(0.01)
    assert app[SENT]
    assert app[SENT][0] < 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": [1, 2]}', "application/json", {"a": [1, 2]}),
        (b"42", "application/json", 42),
        (b'"text"', "application/problem+json", "text"),
        (b"null", "application/json", None),
        (b"true", "application/json; charset=utf-8", True),
        (b"{broken", "application/json", "{broken"),
        (b"plain text", "text/plain", "plain text"),
    ],
)
async def test_json_is_kept_as_json_including_scalars(
    serve: Serve, ex: HttpExecutor, body: bytes, content_type: str, expected: object
) -> None:
    base = await serve(
        body_app(
            {
                "/r": web.Response(
                    body=body, content_type=None, headers={"Content-Type": content_type}
                )
            }
        )
    )
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/r")))
    assert result.status == EndpointStatus.SUCCESS
    assert result.response_body == expected
    assert result.response_bytes == len(body)
    assert result.truncated is False


@pytest.mark.parametrize(
    ("text", "charset"),
    [("Grüße, café", "iso-8859-1"), ("こんにちは", "shift_jis"), ("Привет", "koi8-r")],
)
async def test_non_utf8_charset_is_decoded(
    serve: Serve, ex: HttpExecutor, text: str, charset: str
) -> None:
    raw = text.encode(charset)
    headers = {"Content-Type": f"text/plain; charset={charset}"}
    base = await serve(body_app({"/r": web.Response(body=raw, headers=headers)}))
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/r")))
    assert result.response_body == text
    assert result.content_type == "text/plain"


async def test_unknown_charset_falls_back_to_utf8_with_replacement(
    serve: Serve, ex: HttpExecutor
) -> None:
    headers = {"Content-Type": "text/plain; charset=no-such-charset"}
    base = await serve(body_app({"/r": web.Response(body=b"ok \xff", headers=headers)}))
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/r")))
    assert result.response_body == "ok \ufffd"


async def test_long_text_is_capped_and_marked_truncated(serve: Serve, ex: HttpExecutor) -> None:
    base = await serve(body_app({"/r": web.Response(text="y" * 500)}))
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/r")))
    assert result.response_body == "y" * 50
    assert result.truncated is True
    assert result.response_bytes == 500


async def test_truncated_json_is_kept_as_text(serve: Serve, executors: list[HttpExecutor]) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    body = b'{"items": [' + b"1," * 100 + b"1]}"
    base = await serve(body_app({"/r": web.Response(body=body, content_type="application/json")}))
    ep = endpoint("e", f"{base}/r", max_response_bytes=20)
    [result] = await ex.execute(plan(call("e")), by_id(ep))
    assert result.truncated is True
    assert result.response_body == body[:20].decode()


async def test_fire_and_forget_returns_after_the_status_line(
    serve: Serve, ex: HttpExecutor
) -> None:
    release = asyncio.Event()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=202)
        await resp.prepare(request)
        await resp.write(b"started")
        await release.wait()
        return resp

    app = web.Application()
    app.router.add_get("/r", slow_body)
    base = await serve(app)
    ep = endpoint("e", f"{base}/r", fire_and_forget=True, timeout_ms=2000)
    [result] = await asyncio.wait_for(ex.execute(plan(call("e")), by_id(ep)), 1.5)
    release.set()
    assert result.status == EndpointStatus.SUCCESS
    assert result.status_code == 202
    assert result.response_body is None
    assert result.response_bytes == 0


def sender(payload: bytes, hold: float) -> RawHandler:
    """A raw handler that sends `payload` then holds the connection `hold` s."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        await asyncio.sleep(hold)

    return handle


@pytest.mark.parametrize(
    ("hold", "category"), [(5.0, ErrorCategory.TIMEOUT), (0.0, ErrorCategory.NETWORK)]
)
async def test_lying_content_length_times_out_or_fails_but_never_hangs(
    ex: HttpExecutor, raw_serve: RawServe, hold: float, category: ErrorCategory
) -> None:
    lie = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nContent-Type: text/plain\r\n\r\nshort"
    url = await raw_serve(sender(lie, hold))
    ep = endpoint("e", url, timeout_ms=300)
    [result] = await asyncio.wait_for(ex.execute(plan(call("e")), by_id(ep)), 3)
    assert result.status == EndpointStatus.FAILED
    assert result.error_category == category
