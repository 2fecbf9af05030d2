"""`cronicorn-engine status --json` with two real engines heartbeating into one database."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from cronicorn import create_scheduling_engine
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.settings import Settings
from cronicorn.store.local_backend import LocalSchedulerBackend
from tests.cli.conftest import Endpoints, Invoke

HEARTBEAT_MS = 100


def _engine(worker_id: str) -> SchedulingEngine:
    settings = Settings.from_env()
    backend = LocalSchedulerBackend(settings.database_url, settings.secret_box())
    config = EngineConfig.model_validate(
        {
            "scheduler": {"heartbeat_interval_ms": HEARTBEAT_MS, "processing_interval_ms": 200},
            "execution": {"allowed_hosts": ["127.0.0.1"], "max_endpoint_retries": 0},
        }
    )
    return create_scheduling_engine(config, backend=backend, worker_id=worker_id)


async def _status(invoke: Invoke) -> dict[str, Any]:
    result = await invoke(
        "engine", "status", "--json", "--heartbeat-interval-ms", str(HEARTBEAT_MS)
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def _until(invoke: Invoke, check: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        report = await _status(invoke)
        if check(report):
            return report
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {report}"
        await asyncio.sleep(0.1)


async def test_status_lists_both_engines_with_stats_then_drops_the_stopped_one(
    invoke: Invoke, endpoints: Endpoints
) -> None:
    for name in ("one", "two", "three"):
        created = await invoke("jobs", "create", "--name", name, "--definition", "x", "--json")
        job_id = str(json.loads(created.stdout)["id"])
        added = await invoke(
            "endpoints", "add", job_id, "--name", "ep", "--url", endpoints.url("/ok")
        )
        assert added.exit_code == 0, added.output
    first, second = _engine("engine-a"), _engine("engine-b")
    await first.start()
    await second.start()
    try:
        report = await _until(
            invoke,
            lambda r: (
                r["workers_alive"] == 2
                and sum(w["stats"].get("total_jobs_processed", 0) for w in r["workers"]) == 3
            ),
            "both engines alive with the three runs in their heartbeat stats",
        )
        assert sorted(w["id"] for w in report["workers"]) == ["engine-a", "engine-b"]
        for worker in report["workers"]:
            assert worker["alive"] is True
            assert worker["stats"]["total_cycles"] >= 1
        assert endpoints.calls == {"/ok": 3}

        await second.stop()
        report = await _until(
            invoke, lambda r: r["workers_alive"] == 1, "the stopped engine to disappear"
        )
        assert [w["id"] for w in report["workers"]] == ["engine-a"]
    finally:
        await first.stop()
        await second.stop()
