"""`engine status` and `engine unlock-jobs` through the API (CRONICORN_API_URL set)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.cli.conftest import Endpoints, Invoke, one_line
from tests.e2e._processes import BIN, clean_env


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


async def test_engine_process_in_api_mode_closes_its_client_session(
    invoke: Invoke, live_api: str, endpoints: Endpoints
) -> None:
    """Issue 15: `cronicorn-engine process` through the API logged `Unclosed client session`."""
    key = await _key(invoke, "engine")
    env = clean_env(
        CRONICORN_DATABASE_URL="sqlite:////nonexistent/dir/never.db",
        CRONICORN_API_URL=live_api,
        CRONICORN_API_KEY=key,
        CRONICORN_ALLOWED_HOSTS="127.0.0.1",
        PYTHONDEVMODE="1",  # resource warnings on
    )
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "cronicorn-engine"),
        "process",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode()
    assert "No jobs due." in out.decode()
    assert "Unclosed" not in err.decode(), err.decode()
