"""`engine status` and `engine unlock-jobs` through the API (CRONICORN_API_URL set)."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Invoke, one_line


async def _key(invoke: Invoke, scope: str) -> str:
    return one_line((await invoke("keys", "create", "--tenant", "ops", "--scope", scope)).stdout)


def _use_api(monkeypatch: pytest.MonkeyPatch, live_api: str, key: str) -> None:
    """From here on only the API is reachable: the database URL points nowhere."""
    monkeypatch.setenv("CRONICORN_DATABASE_URL", "sqlite:////nonexistent/dir/never.db")
    monkeypatch.setenv("CRONICORN_API_URL", live_api)
    monkeypatch.setenv("CRONICORN_API_KEY", key)


@pytest.mark.parametrize("scope", ["admin", "engine"])
async def test_status_through_the_api_lists_the_live_worker(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, live_api: str, scope: str
) -> None:
    _use_api(monkeypatch, live_api, await _key(invoke, scope))
    result = await invoke("engine", "status", "--json", "--heartbeat-interval-ms", "5000")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [w["id"] for w in report["workers"]] == ["aio-worker"]
    assert report["workers_alive"] == 1


async def test_unlock_through_the_api_needs_admin(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, live_api: str
) -> None:
    engine_key, admin_key = await _key(invoke, "engine"), await _key(invoke, "admin")
    _use_api(monkeypatch, live_api, engine_key)
    refused = await invoke("engine", "unlock-jobs", "--stale")
    assert refused.exit_code == 1
    assert "403" in one_line(refused.stderr)
    _use_api(monkeypatch, live_api, admin_key)
    result = await invoke("engine", "unlock-jobs", "--stale")
    assert result.exit_code == 0, result.output
    assert "No locks released" in result.stdout
