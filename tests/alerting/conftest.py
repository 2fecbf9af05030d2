"""Alert test fixtures: the real API app (dispatcher included) on a fresh database, a real
engine on the app's own in-process backend, and real receivers on 127.0.0.1 — an aiohttp
server for webhooks, Slack and the job's endpoint, and `aiosmtpd` for email."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from cronicorn.ai import RulesPlanner
from cronicorn.alerting.config import AlertSettings
from cronicorn.alerting.dispatcher import AlertDispatcher
from cronicorn.api import create_app
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.factory import create_scheduling_engine
from cronicorn.settings import Settings
from cronicorn.store.secrets import SecretBox

SECRET_KEY = SecretBox.generate_key()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST to /hook and /slack; the job's endpoint is /target."""

    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    hook_status: int = 200
    target_status: int = 500
    target_calls: int = 0

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@asynccontextmanager
async def serve_receiver(state: Receiver, port: int = 0) -> AsyncIterator[Receiver]:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/target":
            state.target_calls += 1
            return web.json_response({"target": True}, status=state.target_status)
        body = await request.read()
        state.received.append(Received(request.path, dict(request.headers), body))
        return web.json_response({"ok": True}, status=state.hook_status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{bound}"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver(Receiver()) as state:
        yield state


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(message_from_bytes(content))
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


@dataclass
class Stack:
    app: FastAPI
    client: httpx.AsyncClient
    key: str
    engine: SchedulingEngine
    dispatcher: AlertDispatcher

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.call(method, path, **kwargs)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.status_code != 204 else None

    async def run_job(self, job_id: str) -> None:
        """Make the job due now and let the engine run it once."""
        await self.ok("POST", f"/api/jobs/{job_id}/run-now")
        result = await self.engine.process_cycle()
        assert result.jobs_processed == 1, result


def alert_settings(**overrides: Any) -> AlertSettings:
    values: dict[str, Any] = {
        "allowed_hosts": ("127.0.0.1",),
        "poll_ms": 20,
        "retry_base_ms": 20,
        "retry_max_ms": 80,
        "max_attempts": 4,
        "public_url": "https://cron.example",
        **overrides,
    }
    return AlertSettings(**values)


@asynccontextmanager
async def make_stack(
    database_url: str,
    *,
    dispatch: bool = False,
    private_endpoints: bool = True,
    **alert_overrides: Any,
) -> AsyncIterator[Stack]:
    """The API app with `dispatch` (the background dispatcher) on or off — off, tests drive
    `stack.dispatcher.run_once()` themselves — and one engine on the app's backend."""
    settings = Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        alerts=alert_settings(**alert_overrides),
        alert_dispatch=dispatch,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        key = (await app.state.services.keys.create("alice", "user")).key
        config = EngineConfig.model_validate(
            {
                "execution": {
                    "allow_private_networks": private_endpoints,
                    "max_endpoint_retries": 0,
                    "circuit_breaker": {"enabled": False},
                }
            }
        )
        engine = create_scheduling_engine(
            config,
            backend=app.state.scheduler,
            planner=RulesPlanner(config.scheduler.rules_strategy),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            try:
                yield Stack(app, client, key, engine, app.state.alerts)
            finally:
                await engine.stop()


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with make_stack(database_url) as s:
        yield s


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., Controller]]:
    """Factory: an aiosmtpd receiver on 127.0.0.1 (stopped at teardown)."""
    started: list[Controller] = []

    def start(handler: Mailbox, **kwargs: Any) -> Controller:
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(predicate: Callable[[], Any], timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await _holds(predicate):
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def _holds(predicate: Callable[[], Any]) -> bool:
    value = predicate()
    if asyncio.iscoroutine(value):
        value = await value
    return bool(value)


JOB = {"name": "orders", "definition": "poll the orders API", "interval_ms": 60_000}


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), for an SMTP server with STARTTLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
