"""SSRF guard: literal IPs, names resolving inward, redirects, allow switches."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointResult, EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import ExecutionConfig
from cronicorn.executor.ssrf import blocked_reason

from .conftest import MapResolver, Serve, by_id, call, endpoint, plan


class Target:
    """/target counts hits; /redirect?to=URL&code=N redirects; /echo echoes the request."""

    def __init__(self) -> None:
        self.hits = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/target", self.target)
        app.router.add_route("*", "/redirect", self.redirect)
        app.router.add_route("*", "/echo", self.echo)
        return app

    async def target(self, _: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="reached")

    async def redirect(self, request: web.Request) -> web.Response:
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "body": body.decode(),
                "auth": request.headers.get("Authorization"),
                "host": request.host,
            }
        )


@pytest.fixture
async def target(serve: Serve) -> tuple[Target, int]:
    server = Target()
    base = await serve(server.app())
    return server, int(base.rsplit(":", 1)[1])


async def run(config: ExecutionConfig, url: str, executors: list[HttpExecutor], **kw: Any) -> Any:
    resolver = kw.pop("resolver", None)
    ex = HttpExecutor(config, resolver=resolver)
    executors.append(ex)
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", url, **kw)))
    return result


def assert_blocked(result: EndpointResult) -> None:
    assert result.status == EndpointStatus.FAILED, result
    assert result.error_category == ErrorCategory.SSRF_BLOCKED, result
    assert result.status_code in (None, 301, 302, 303, 307, 308)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",
        "2002:a00:1::",
    ],
)
def test_non_public_addresses_are_blocked(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "file:///etc/passwd",
        "ftp://example.com/",
    ],
)
async def test_literal_private_ips_and_bad_schemes_are_blocked(
    executors: list[HttpExecutor], url: str
) -> None:
    assert_blocked(await run(ExecutionConfig(), url, executors))


async def test_loopback_server_blocked_by_default_and_never_reached(
    target: tuple[Target, int], executors: list[HttpExecutor]
) -> None:
    server, port = target
    assert_blocked(await run(ExecutionConfig(), f"http://127.0.0.1:{port}/target", executors))
    assert_blocked(await run(ExecutionConfig(), f"http://localhost:{port}/target", executors))
    assert server.hits == 0


@pytest.mark.parametrize("address", ["10.0.0.1", "127.0.0.1", "169.254.169.254", "::1"])
async def test_hostname_resolving_to_private_address_is_blocked(
    target: tuple[Target, int], executors: list[HttpExecutor], address: str
) -> None:
    server, port = target
    resolver = MapResolver({"api.example.com": address})
    url = f"http://api.example.com:{port}/target"
    assert_blocked(await run(ExecutionConfig(), url, executors, resolver=resolver))
    assert resolver.lookups == ["api.example.com"]
    assert server.hits == 0


@pytest.mark.parametrize(
    "destination",
    [
        "http://127.0.0.1:{port}/target",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.example.com:{port}/target",
        "http://[::ffff:7f00:1]:{port}/target",
        "gopher://127.0.0.1:{port}/",
    ],
)
@pytest.mark.parametrize("code", [301, 302, 307])
async def test_redirect_from_public_looking_host_to_private_is_blocked(
    target: tuple[Target, int], executors: list[HttpExecutor], destination: str, code: int
) -> None:
    server, port = target
    resolver = MapResolver({"public.example.com": "127.0.0.1", "internal.example.com": "10.0.0.9"})
    config = ExecutionConfig(allowed_hosts=["public.example.com"])
    to = destination.format(port=port)
    url = f"http://public.example.com:{port}/redirect?code={code}&to={to}"
    result = await run(config, url, executors, resolver=resolver)
    assert_blocked(result)
    assert server.hits == 0


@pytest.mark.parametrize(
    "config",
    [
        ExecutionConfig(allow_private_networks=True),
        ExecutionConfig(allowed_hosts=["127.0.0.1"]),
        ExecutionConfig(allowed_hosts=["127.0.0.0/8"]),
        ExecutionConfig(allowed_hosts=["checked.example"]),
        ExecutionConfig(allowed_hosts=["*.example"]),
    ],
)
async def test_allow_switch_and_list_open_private_destinations(
    target: tuple[Target, int], executors: list[HttpExecutor], config: ExecutionConfig
) -> None:
    server, port = target
    resolver = MapResolver({"checked.example": "127.0.0.1"})
    url = f"http://checked.example:{port}/redirect?to=http://checked.example:{port}/target"
    result = await run(config, url, executors, resolver=resolver)
    assert result.status == EndpointStatus.SUCCESS, result.error
    assert result.response_body == "reached"
    assert server.hits == 1
    assert "checked.example" in resolver.lookups  # the guarded resolver chose the address


async def test_allow_list_does_not_open_other_private_hosts(
    target: tuple[Target, int], executors: list[HttpExecutor]
) -> None:
    server, port = target
    resolver = MapResolver({"ok.example": "127.0.0.1", "other.example": "127.0.0.1"})
    config = ExecutionConfig(allowed_hosts=["ok.example"])
    url = f"http://ok.example:{port}/redirect?to=http://other.example:{port}/target"
    assert_blocked(await run(config, url, executors, resolver=resolver))
    assert server.hits == 0


async def echo_after_redirect(
    executors: list[HttpExecutor], port: int, code: int, method: str, host: str = "127.0.0.1"
) -> Any:
    resolver = MapResolver({"other.example": "127.0.0.1"})
    config = ExecutionConfig(allow_private_networks=True)
    url = f"http://127.0.0.1:{port}/redirect?code={code}&to=http://{host}:{port}/echo"
    result = await run(
        config, url, executors, resolver=resolver, method=method, body={"a": 1}, bearer_token="t"
    )
    assert result.status == EndpointStatus.SUCCESS, result.error
    return result.response_body


@pytest.mark.parametrize(
    ("code", "method", "expected_method", "keeps_body"),
    [
        (303, "POST", "GET", False),
        (302, "POST", "GET", False),
        (301, "POST", "GET", False),
        (307, "POST", "POST", True),
        (308, "PUT", "PUT", True),
        (302, "PUT", "PUT", True),
    ],
)
async def test_redirect_method_rewrite(
    target: tuple[Target, int],
    executors: list[HttpExecutor],
    code: int,
    method: str,
    expected_method: str,
    keeps_body: bool,
) -> None:
    _, port = target
    echoed = await echo_after_redirect(executors, port, code, method)
    assert echoed["method"] == expected_method
    assert (json.loads(echoed["body"]) if echoed["body"] else None) == (
        {"a": 1} if keeps_body else None
    )
    assert echoed["auth"] == "Bearer t"  # same origin keeps credentials


async def test_cross_origin_redirect_drops_credentials(
    target: tuple[Target, int], executors: list[HttpExecutor]
) -> None:
    _, port = target
    echoed = await echo_after_redirect(executors, port, 302, "GET", host="other.example")
    assert echoed["auth"] is None
    assert echoed["host"].startswith("other.example")


async def test_too_many_redirects_fail(
    target: tuple[Target, int], executors: list[HttpExecutor]
) -> None:
    _, port = target
    loop = f"http://127.0.0.1:{port}/redirect?to=/redirect%3Fto%3D/target"
    config = ExecutionConfig(allow_private_networks=True, max_redirects=1)
    result = await run(config, loop, executors)
    assert result.status == EndpointStatus.FAILED
    assert "too many redirects" in (result.error or "")
    config = ExecutionConfig(allow_private_networks=True, max_redirects=2)
    assert (await run(config, loop, executors)).response_body == "reached"
