"""`cronicorn alerts test CHANNEL` through the API (the API process sends the message)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.cli.conftest import Endpoints, Invoke, one_line


async def _channel(live_api: str, key: str, name: str, url: str) -> dict[str, object]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
        http.post(
            f"{live_api}/api/alerts/channels", json={"name": name, "kind": "webhook", "url": url}
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        body: dict[str, object] = await resp.json()
        return body


async def test_alerts_test_sends_through_the_api(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, live_api: str, endpoints: Endpoints
) -> None:
    key = one_line((await invoke("keys", "create", "--tenant", "acme", "--scope", "user")).stdout)
    ok = await _channel(live_api, key, "ops", endpoints.url("/ok"))
    await _channel(live_api, key, "broken", endpoints.url("/fail"))
    monkeypatch.setenv("CRONICORN_DATABASE_URL", "sqlite:////nonexistent/dir/never.db")
    monkeypatch.setenv("CRONICORN_API_URL", live_api)
    monkeypatch.setenv("CRONICORN_API_KEY", key)

    result = await invoke("alerts", "test", "ops")
    assert result.exit_code == 0, result.output
    assert "delivered to channel ops" in result.stdout
    assert endpoints.calls["/ok"] == 1

    by_id = await invoke("alerts", "test", str(ok["id"]), "--json")
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout)["status"] == "delivered"
    assert endpoints.calls["/ok"] == 2

    failed = await invoke("alerts", "test", "broken")
    assert failed.exit_code == 1
    assert "HTTP 500" in one_line(failed.stderr)

    missing = await invoke("alerts", "test", "nope")
    assert missing.exit_code == 1
    assert "not found" in one_line(missing.stderr)

    listed = await invoke("alerts", "channels", "--json")
    assert sorted(c["name"] for c in json.loads(listed.stdout)) == ["broken", "ops"]
    assert "/ok" not in listed.stdout  # URLs show as scheme://host/***
