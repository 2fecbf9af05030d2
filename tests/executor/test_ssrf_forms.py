"""Every destination form an attacker can write for an inward address, through the real
`HttpExecutor`: each call ends `ssrf_blocked` (not retried, not counted by the circuit
breaker) and no connection reaches the loopback canaries listening on 127.0.0.1 and ::1.

Forms with `{p}` / `{p6}` point at the IPv4 / IPv6 canary's port; the others name addresses
nothing listens on here, and are checked for the category (the guard refuses them before
any connection is attempted, which `attempts == 1` and the missing status code show).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointResult, EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import CircuitBreakerConfig, ExecutionConfig
from cronicorn.executor.ssrf import IPAddress, parse_ipv4_loose

from .conftest import MapResolver, Serve, by_id, call, endpoint, plan

OnConnect = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Canaries:
    """Raw TCP listeners on 127.0.0.1 and ::1 that count every accepted connection."""

    port4: int = 0
    port6: int = 0
    accepted: list[str] = field(default_factory=list)

    def url(self, form: str) -> str:
        return form.format(p=self.port4, p6=self.port6)


@pytest.fixture
async def canaries() -> AsyncIterator[Canaries]:
    found = Canaries()

    def counter(name: str) -> OnConnect:
        async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            found.accepted.append(name)
            writer.close()

        return on_connect

    v4 = await asyncio.start_server(counter("127.0.0.1"), "127.0.0.1", 0)
    v6 = await asyncio.start_server(counter("::1"), "::1", 0)
    found.port4 = v4.sockets[0].getsockname()[1]
    found.port6 = v6.sockets[0].getsockname()[1]
    yield found
    for server in (v4, v6):
        server.close()
        await server.wait_closed()


class ListResolver:
    """Maps names to several addresses (a rebinding-style mixed answer)."""

    def __init__(self, mapping: dict[str, Sequence[str]]) -> None:
        self.mapping = mapping

    async def resolve(self, host: str) -> list[IPAddress]:
        if host not in self.mapping:
            raise OSError(f"unknown host {host}")
        return [ipaddress.ip_address(a) for a in self.mapping[host]]


LOOPBACK_FORMS = [
    # numeric IPv4 forms, parsed the way inet_aton does
    "http://127.0.0.1:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0X7F000001:{p}/",
    "http://017700000001:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0177.1:{p}/",
    "http://0x7f.1:{p}/",
    "http://0x7f.0.0.1:{p}/",
    "http://0x7f.0x0.0x0.0x1:{p}/",
    "http://127.0x0.1:{p}/",
    "http://0177.0x0.0.01:{p}/",
    "http://127.0.0.1.:{p}/",
    "http://127.000.000.001:{p}/",
    "http://0x00007f000001:{p}/",
    "http://00000177.0.0.1:{p}/",
    "http://127.65537:{p}/",
    "http://2130706434:{p}/",
    "http://0.0.0.0:{p}/",
    "http://0:{p}/",
    "http://0x0:{p}/",
    "http://00:{p}/",
    # names that mean this machine
    "http://localhost:{p}/",
    "http://localhost.:{p}/",
    "http://LOCALHOST:{p}/",
    "http://LocalHost.:{p}/",
    "http://canary.localhost:{p}/",
    # IPv6 loopback and IPv4 embeddings of 127.0.0.1
    "http://[::1]:{p6}/",
    "http://[0:0:0:0:0:0:0:1]:{p6}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://[2002:7f00:1::]:{p}/",
    "http://[64:ff9b::7f00:1]:{p}/",
    "http://[64:ff9b::127.0.0.1]:{p}/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{p}/",
    "http://[::]:{p6}/",
    "http://[::ffff:0.0.0.0]:{p}/",
]

OTHER_FORMS = [
    # cloud metadata services, in several spellings
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://192.0.0.192/",
    # link-local, unique-local, site-local, multicast, broadcast, reserved
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fec0::1]/",
    "http://[fec0:1::1]/",
    "http://[feff::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    # private ranges, also as numbers
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://167772161/",
    "http://0xc0a80001/",
    "http://012.0.0.1/",
    "http://10.1/",
    # numeric hosts that are no valid address at all
    "http://999.1.1.1/",
    "http://0x1ffffffff/",
    "http://1.2.3.4.5/",
]


def blocked_config(**kw: object) -> ExecutionConfig:
    values: dict[str, object] = {"retry_base_delay_ms": 0, "retry_max_delay_ms": 0}
    values.update(kw)
    return ExecutionConfig(**values)  # type: ignore[arg-type]


async def run_one(executor: HttpExecutor, url: str, eid: str = "e") -> EndpointResult:
    [result] = await executor.execute(plan(call(eid)), by_id(endpoint(eid, url)))
    return result


def assert_blocked(result: EndpointResult, url: str) -> None:
    status = result.status
    category = result.error_category
    assert status == EndpointStatus.FAILED, (url, result)
    assert category == ErrorCategory.SSRF_BLOCKED, (url, result)
    assert result.attempts <= 1, (url, result)


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    ex = HttpExecutor(blocked_config())
    yield ex
    await ex.close()


async def test_canaries_count_connections(canaries: Canaries) -> None:
    """Positive control: the canaries do see a call the guard lets through."""
    ex = HttpExecutor(blocked_config(allow_private_networks=True, max_endpoint_retries=0))
    try:
        await run_one(ex, canaries.url("http://127.0.0.1:{p}/"))
        await run_one(ex, canaries.url("http://[::1]:{p6}/"), "e6")
    finally:
        await ex.close()
    assert "127.0.0.1" in canaries.accepted
    assert "::1" in canaries.accepted


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
async def test_loopback_forms_are_blocked_and_never_connect(
    executor: HttpExecutor, canaries: Canaries, form: str
) -> None:
    url = canaries.url(form)
    assert_blocked(await run_one(executor, url), url)
    assert canaries.accepted == []


@pytest.mark.parametrize("form", OTHER_FORMS)
async def test_inward_and_metadata_forms_are_blocked(
    executor: HttpExecutor, canaries: Canaries, form: str
) -> None:
    result = await run_one(executor, form)
    assert_blocked(result, form)
    assert result.status_code is None
    assert canaries.accepted == []


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("loop.example", ["127.0.0.1"]),
        ("meta.example", ["169.254.169.254"]),
        ("v6loop.example", ["::1"]),
        ("mapped.example", ["::ffff:127.0.0.1"]),
        ("nat64.example", ["64:ff9b::7f00:1"]),
        ("sitelocal.example", ["fec0::1"]),
        ("rebind.example", ["93.184.216.34", "127.0.0.1"]),
    ],
)
async def test_names_resolving_inward_are_blocked(
    canaries: Canaries, name: str, addresses: list[str]
) -> None:
    ex = HttpExecutor(blocked_config(), resolver=ListResolver({name: addresses}))
    try:
        url = canaries.url(f"http://{name}:{{p}}/")
        assert_blocked(await run_one(ex, url), url)
    finally:
        await ex.close()
    assert canaries.accepted == []


class Origin:
    """An allowed origin that redirects wherever `?to=` says."""

    def __init__(self) -> None:
        self.hits = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/redirect", self.redirect)
        return app

    async def redirect(self, request: web.Request) -> web.Response:
        self.hits += 1
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})


REDIRECT_TARGETS = [
    "http://127.0.0.1:{p}/",
    "http://127.1:{p}/",
    "http://0x7f000001:{p}/",
    "http://2130706433:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://localhost:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::1]:{p6}/",
    "http://[2002:7f00:1::]:{p}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[fec0::1]/",
]


@pytest.mark.parametrize("target", REDIRECT_TARGETS)
@pytest.mark.parametrize("code", [302, 307])
async def test_redirect_from_allowed_host_to_blocked_destination(
    serve: Serve, canaries: Canaries, target: str, code: int
) -> None:
    origin = Origin()
    base = await serve(origin.app())
    port = base.rsplit(":", 1)[1]
    resolver = MapResolver({"origin.example": "127.0.0.1"})
    ex = HttpExecutor(blocked_config(allowed_hosts=["origin.example"]), resolver=resolver)
    to = canaries.url(target)
    url = f"http://origin.example:{port}/redirect?code={code}&to={to}"
    try:
        result = await run_one(ex, url)
    finally:
        await ex.close()
    assert result.error_category == ErrorCategory.SSRF_BLOCKED, (to, result)
    assert result.attempts == 1
    assert origin.hits == 1  # the allowed origin was reached; the redirect target was not
    assert canaries.accepted == []


async def test_blocked_numeric_forms_are_not_retried_nor_open_the_circuit(
    canaries: Canaries,
) -> None:
    config = blocked_config(circuit_breaker=CircuitBreakerConfig(failure_threshold=2))
    ex = HttpExecutor(config)
    try:
        for _ in range(5):
            result = await run_one(ex, canaries.url("http://127.1:{p}/"))
            assert_blocked(result, "127.1")
        assert ex.circuit_state("e") == "closed"
    finally:
        await ex.close()
    assert canaries.accepted == []


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("1.2.3", "1.2.0.3"),
        ("8.8.8.8", "8.8.8.8"),
        ("0", "0.0.0.0"),
    ],
)
def test_parse_ipv4_loose_matches_inet_aton(host: str, address: str) -> None:
    assert parse_ipv4_loose(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["example.com", "1.example", "0x7g", "08.1", "", "1..2"])
def test_parse_ipv4_loose_rejects_names(host: str) -> None:
    assert parse_ipv4_loose(host) is None
