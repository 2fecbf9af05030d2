"""Channels against real receivers: signed webhooks verified with the snippet from
docs/alerts.md, Slack payloads, email over SMTP with STARTTLS (aiosmtpd), the SSRF guard at
creation and at delivery, and secrets that never leave encrypted storage."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from cronicorn.store.tables import AlertDelivery
from tests.alerting.conftest import (
    JOB,
    Mailbox,
    Receiver,
    Stack,
    make_stack,
    self_signed_cert,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def documented_verify() -> Callable[..., bool]:
    """The Python block of "Verifying webhook signatures" in docs/alerts.md, executed."""
    text = DOCS.read_text()
    section = text.split("## Verifying webhook signatures", 1)[1]
    [snippet] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    assert len(snippet.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


async def test_webhook_signature_verifies_with_the_documented_snippet(
    stack: Stack, receiver: Receiver
) -> None:
    created = await stack.ok(
        "POST",
        "/api/alerts/channels",
        json={"name": "ops", "kind": "webhook", "url": receiver.url("/hook")},
    )
    secret = created["signing_secret"]
    assert secret.startswith("whsec_")
    delivery = await stack.ok("POST", "/api/alerts/channels/ops/test")  # by name
    assert delivery["status"] == "delivered"
    assert delivery["event"] == "test"

    [received] = receiver.at("/hook")
    verify = documented_verify()
    timestamp = received.headers["X-Cronicorn-Timestamp"]
    signature = received.headers["X-Cronicorn-Signature"]
    assert abs(int(timestamp) - time.time()) < 60
    assert verify(secret, timestamp, received.body, signature)
    assert not verify(secret, timestamp, received.body + b" ", signature)  # body tampered
    assert not verify("whsec_other", timestamp, received.body, signature)
    assert not verify(secret, str(int(timestamp) - 3600), received.body, signature)  # replay
    assert received.json()["event"] == "test"

    rotated = await stack.ok("POST", f"/api/alerts/channels/{created['id']}/rotate-secret")
    await stack.ok("POST", f"/api/alerts/channels/{created['id']}/test")
    second = receiver.at("/hook")[1]
    headers = second.headers
    assert verify(
        rotated["signing_secret"],
        headers["X-Cronicorn-Timestamp"],
        second.body,
        headers["X-Cronicorn-Signature"],
    )
    assert not verify(
        secret, headers["X-Cronicorn-Timestamp"], second.body, headers["X-Cronicorn-Signature"]
    )


async def test_slack_channel_gets_a_text_payload(stack: Stack, receiver: Receiver) -> None:
    created = await stack.ok(
        "POST",
        "/api/alerts/channels",
        json={"name": "slack", "kind": "slack", "url": receiver.url("/slack/T0/B0/xyz")},
    )
    assert created["signing_secret"] is None
    await stack.ok("POST", f"/api/alerts/channels/{created['id']}/test")
    [received] = receiver.at("/slack/T0/B0/xyz")
    body = received.json()
    assert list(body) == ["text"]
    assert "Test message from Cronicorn" in body["text"]


async def test_email_over_smtp_with_starttls_and_login(
    database_url: str, tmp_path: Path, smtp_server: Callable[..., Controller]
) -> None:
    cert, key = self_signed_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"smtp-pass-123")

    controller = smtp_server(
        mailbox,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    from cronicorn.alerting.config import SmtpSettings

    smtp = SmtpSettings(
        host="127.0.0.1",
        port=controller.port,
        username="alerts",
        password="smtp-pass-123",
        from_addr="cronicorn@example.com",
        starttls=True,
        ca_file=str(cert),
    )
    async with make_stack(database_url, smtp=smtp) as stack:
        created = await stack.ok(
            "POST",
            "/api/alerts/channels",
            json={"name": "mail", "kind": "email", "email_to": ["oncall@example.com"]},
        )
        delivery = await stack.ok("POST", f"/api/alerts/channels/{created['id']}/test")
    assert delivery["status"] == "delivered", delivery
    assert logins == [(b"alerts", b"smtp-pass-123")]
    [message] = mailbox.messages
    assert message["Subject"] == "[Cronicorn] test message"
    assert message["To"] == "oncall@example.com"
    assert "Test message from Cronicorn" in message.get_payload()
    assert mailbox.envelopes == [("cronicorn@example.com", ["oncall@example.com"])]


async def test_email_channel_needs_smtp_configured(stack: Stack) -> None:
    resp = await stack.call(
        "POST",
        "/api/alerts/channels",
        json={"name": "mail", "kind": "email", "email_to": ["oncall@example.com"]},
    )
    assert resp.status_code == 422
    assert "CRONICORN_SMTP_HOST" in resp.text


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5/hook", "http://169.254.169.254/latest", "http://[::1]:8080/x"]
)
async def test_private_address_is_refused_at_creation_like_an_endpoint(
    sqlite_url: str, receiver: Receiver, url: str
) -> None:
    async with make_stack(sqlite_url, allowed_hosts=(), private_endpoints=False) as stack:
        resp = await stack.call(
            "POST", "/api/alerts/channels", json={"name": "x", "kind": "webhook", "url": url}
        )
        assert resp.status_code == 422
        [error] = resp.json()["detail"]
        assert error["loc"][-1] == "url"
        assert error["msg"].startswith("url: blocked destination: ")
        assert await stack.ok("GET", "/api/alerts/channels") == []

        # An endpoint with the same URL is refused by the same guard, with the same words.
        job = await stack.ok("POST", "/api/jobs", json=JOB)
        await stack.ok("POST", f"/api/jobs/{job['id']}/endpoints", json={"name": "e", "url": url})
        await stack.run_job(job["id"])
        [run] = await stack.ok("GET", f"/api/jobs/{job['id']}/runs")
        detail = await stack.ok("GET", f"/api/runs/{run['id']}")
        endpoint_error = detail["results"][0]["error"]
        assert endpoint_error == error["msg"].removeprefix("url: ")

        # PATCH is checked too; a public channel becomes private → refused, unchanged.
        ok = await stack.ok(
            "POST",
            "/api/alerts/channels",
            json={"name": "ok", "kind": "webhook", "url": "https://hooks.example.com/a"},
        )
        resp = await stack.call("PATCH", f"/api/alerts/channels/{ok['id']}", json={"url": url})
        assert resp.status_code == 422
        again = await stack.ok("GET", f"/api/alerts/channels/{ok['id']}")
        assert again["url"] == "https://hooks.example.com/***"


async def test_localhost_is_refused_at_creation_like_an_endpoint(sqlite_url: str) -> None:
    async with make_stack(sqlite_url, allowed_hosts=()) as stack:
        resp = await stack.call(
            "POST",
            "/api/alerts/channels",
            json={"name": "lo", "kind": "webhook", "url": "http://localhost:9/hook"},
        )
    assert resp.status_code == 422
    assert "blocked destination: loopback" in resp.text


def _name_resolving_inward() -> str:
    """This machine's host name, which /etc/hosts maps to a loopback or private address."""
    host = socket.gethostname()
    try:
        infos = socket.getaddrinfo(host, 9, proto=socket.IPPROTO_TCP)
    except OSError:
        pytest.skip(f"host name {host!r} does not resolve here")
    if not all(ipaddress.ip_address(info[4][0]).is_private for info in infos):
        pytest.skip(f"host name {host!r} resolves to a public address here")
    return host


async def test_host_name_resolving_to_a_private_address_is_refused_at_delivery(
    sqlite_url: str,
) -> None:
    host = _name_resolving_inward()
    async with make_stack(sqlite_url, allowed_hosts=()) as stack:
        created = await stack.ok(
            "POST",
            "/api/alerts/channels",
            json={"name": "lo", "kind": "webhook", "url": f"http://{host}:9/hook"},
        )
        delivery = await stack.ok("POST", f"/api/alerts/channels/{created['id']}/test")
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 1
    assert f"blocked destination {host}" in delivery["last_error"]


async def test_channel_secrets_never_appear_in_output_logs_or_the_delivery_log(
    stack: Stack, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    slack_token = "T0SECRET/B0SECRET/slacktokenvalue123"
    outputs: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        resp = await stack.call(method, path, **kwargs)
        outputs.append(resp.text)
        assert resp.status_code < 300, resp.text
        return resp.json() if resp.status_code != 204 else None

    hook = await stack.ok(
        "POST",
        "/api/alerts/channels",
        json={"name": "ops", "kind": "webhook", "url": receiver.url("/hook?token=hooktoken987")},
    )
    secret = hook["signing_secret"]
    assert hook["url"] == f"{receiver.base_url}/***"
    slack = await call(
        "POST",
        "/api/alerts/channels",
        json={"name": "slack", "kind": "slack", "url": receiver.url(f"/slack/{slack_token}")},
    )
    job = await call("POST", "/api/jobs", json=JOB)
    await call(
        "POST",
        f"/api/jobs/{job['id']}/endpoints",
        json={"name": "target", "url": receiver.url("/target")},
    )
    await call("PUT", f"/api/jobs/{job['id']}/alert-rule", json={"failure_threshold": 1})
    receiver.hook_status = 503  # the first attempts fail: errors are logged and stored
    await stack.run_job(job["id"])
    await stack.dispatcher.run_once()
    receiver.hook_status = 200
    await _retry_due(stack)
    await stack.dispatcher.run_once()
    for channel in (hook, slack):
        await call("GET", f"/api/alerts/channels/{channel['id']}")
        await call("PATCH", f"/api/alerts/channels/{channel['id']}", json={"name": "renamed"})
        await call("POST", f"/api/alerts/channels/{channel['id']}/test")
        await call("GET", f"/api/alerts/channels/{channel['id']}/deliveries")
    await call("GET", "/api/alerts/channels")
    [alert] = await call("GET", "/api/alerts")
    log = await call("GET", f"/api/alerts/{alert['id']}/deliveries")
    assert {d["status"] for d in log} == {"delivered"}
    assert any(d["attempts"] == 2 and d["last_error"].startswith("HTTP 503") for d in log)
    await call("GET", f"/api/jobs/{job['id']}/alert-rule")
    openapi = await stack.client.get("/openapi.json")
    outputs.append(openapi.text)

    async with stack.app.state.db.connect() as conn:
        rows = (await conn.execute(sa.select(AlertDelivery))).mappings().all()
    stored = repr([dict(r) for r in rows])
    # Every log record of the process except the test receiver's own access log (the
    # receiver is the secret's destination: its request line is the URL).
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    logs = "\n".join(r.getMessage() for r in ours) + repr([r.__dict__ for r in ours])
    assert len(receiver.at("/hook")) >= 2  # the secrets were really used
    for needle in (secret, slack_token, "hooktoken987"):
        for where, text in (("API output", "\n".join(outputs)), ("logs", logs), ("log", stored)):
            assert needle not in text, f"{needle[:8]}… leaked into {where}"


async def _retry_due(stack: Stack) -> None:
    """Make the pending retries due now (the backoff is what delays them)."""
    async with stack.app.state.db.begin() as conn:
        await conn.execute(
            sa.update(AlertDelivery)
            .where(AlertDelivery.status == "pending")
            .values(next_attempt_at=sa.func.current_timestamp())
        )
