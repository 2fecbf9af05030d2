"""The MCP tools end to end, with the SDK's own client over stdio (`cronicorn mcp` as a
subprocess) and over streamable HTTP (`/mcp` on the API server), against the real API and
engine on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client, MCPError

from cronicorn.mcp.tools import TOOL_SPECS
from tests.cli.conftest import Endpoints
from tests.mcp.conftest import Connect, call_error, call_ok

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # stdio spawns `cronicorn mcp`

WAIT_S = 30.0
LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


async def _job_with_endpoint(client: Client, url: str) -> dict[str, Any]:
    """A job that is not due yet (it cannot run before its endpoint exists) and its endpoint."""
    job: dict[str, Any] = await call_ok(
        client,
        "create_job",
        {"name": "orders", "definition": "call the orders API", "next_run_at": LATER},
    )
    endpoint = await call_ok(
        client, "add_endpoint", {"job_id": job["id"], "name": "orders", "url": url}
    )
    assert endpoint["job_id"] == job["id"]
    return job


async def _finished_runs(client: Client, job_id: str) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        runs: list[dict[str, Any]] = await call_ok(client, "list_runs", {"job_id": job_id})
        if runs and runs[0]["status"] != "running":
            return runs
        assert loop.time() < deadline, f"no finished run after {WAIT_S} s: {runs}"
        await asyncio.sleep(0.1)


async def test_lists_every_tool_and_resource(connect: Connect) -> None:
    async with connect("alice") as client:
        tools = (await client.list_tools()).tools
        assert sorted(t.name for t in tools) == sorted(spec.name for spec in TOOL_SPECS)
        assert all(t.description and len(t.description) > 40 for t in tools)
        docs = (await client.list_resources()).resources
        assert {r.uri for r in docs} == {
            "cronicorn://docs/concepts",
            "cronicorn://docs/scheduling",
            "cronicorn://docs/ai",
        }
        scheduling = await client.read_resource("cronicorn://docs/scheduling")
        assert "baseline_interval" in scheduling.contents[0].text  # type: ignore[union-attr]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["cronicorn://jobs/{job_id}/runs"]


async def test_clients_of_the_handshake_era_are_served_too(connect: Connect) -> None:
    async with connect("alice", mode="legacy") as client:
        assert len((await client.list_tools()).tools) == len(TOOL_SPECS)
        job = await call_ok(client, "create_job", {"name": "n", "definition": "d"})
        assert [j["id"] for j in await call_ok(client, "list_jobs")] == [job["id"]]
        message = await call_error(client, "update_job", {"job_id": job["id"], "timezone": "Mars"})
        assert message.startswith("API 422: timezone: "), message


async def test_create_a_job_and_an_endpoint_run_it_now_and_read_its_runs(
    connect: Connect, endpoints: Endpoints
) -> None:
    async with connect("alice") as client:
        job = await _job_with_endpoint(client, endpoints.url("/ok"))
        assert [e["name"] for e in await call_ok(client, "list_endpoints", {"job_id": job["id"]})]

        due = await call_ok(client, "run_job_now", {"job_id": job["id"]})
        assert datetime.fromisoformat(due["next_run_at"]) <= datetime.now(UTC)

        runs = await _finished_runs(client, job["id"])
        assert runs[0]["status"] == "completed", runs[0]
        assert runs[0]["schedule"]["source"]
        run = await call_ok(client, "get_run", {"run_id": runs[0]["id"]})
        assert [(r["status"], r["status_code"]) for r in run["results"]] == [("success", 200)]
        assert endpoints.calls["/ok"] == 1

        resource = await client.read_resource(f"cronicorn://jobs/{job['id']}/runs")
        listed = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
        assert [r["id"] for r in listed] == [r["id"] for r in runs]


async def test_steer_a_job_pause_resume_message_update_archive(
    connect: Connect, endpoints: Endpoints
) -> None:
    async with connect("alice") as client:
        job = await _job_with_endpoint(client, endpoints.url("/ok"))
        job_id = job["id"]
        assert (await call_ok(client, "pause_job", {"job_id": job_id}))["status"] == "paused"
        conflict = await call_error(client, "run_job_now", {"job_id": job_id})
        assert conflict == f"API 409: job {job_id} is paused: resume it first"
        assert (await call_ok(client, "resume_job", {"job_id": job_id}))["status"] == "active"

        message = await call_ok(client, "add_message", {"job_id": job_id, "content": "go slow"})
        assert message["source"] == "user"
        history = await call_ok(client, "list_messages", {"job_id": job_id})
        assert "go slow" in [m["content"] for m in history]

        changed = await call_ok(client, "update_job", {"job_id": job_id, "interval_ms": 60000})
        assert changed["interval_ms"] == 60000
        (endpoint,) = await call_ok(client, "list_endpoints", {"job_id": job_id})
        patched = await call_ok(
            client, "update_endpoint", {"endpoint_id": endpoint["id"], "timeout_ms": 5000}
        )
        assert patched["timeout_ms"] == 5000
        deleted = await client.call_tool("delete_endpoint", {"endpoint_id": endpoint["id"]})
        assert not deleted.is_error
        assert await call_ok(client, "list_endpoints", {"job_id": job_id}) == []

        archived = await call_ok(client, "archive_job", {"job_id": job_id})
        assert archived["status"] == "archived"
        assert await call_ok(client, "list_jobs") == []
        assert [j["id"] for j in await call_ok(client, "list_jobs", {"status": "archived"})] == [
            job_id
        ]
        assert await call_ok(client, "list_errors", {"job_id": job_id}) == []


async def test_bad_input_returns_the_api_field_message_and_changes_nothing(
    connect: Connect,
) -> None:
    async with connect("alice") as client:
        message = await call_error(
            client, "create_job", {"name": "x", "definition": "y", "interval_ms": 5}
        )
        assert message == "API 422: interval_ms: Input should be greater than or equal to 1000"
        message = await call_error(client, "create_job", {"name": "x", "definition": "y", "z": 1})
        assert message == "API 422: z: Extra inputs are not permitted"
        message = await call_error(client, "list_jobs", {"limit": 0})
        assert message == "API 422: limit: Input should be greater than or equal to 1"
        assert await call_ok(client, "list_jobs") == []

        missing = await call_error(client, "get_job", {"job_id": "no-such-job"})
        assert missing == "job no-such-job not found"
        unknown = await call_error(client, "get_job", {"job_id": "x", "extra": 1})
        assert unknown == "get_job: unknown argument(s) extra; get_job takes none"
        no_id = await call_error(client, "pause_job", {})
        assert no_id == "pause_job: job_id: required, a non-empty string"
        # an id cannot escape its path segment into another route
        sneaky = await call_error(client, "get_job", {"job_id": "../../admin/keys"})
        assert sneaky.lower().endswith("not found"), sneaky


async def test_a_key_of_another_tenant_sees_nothing_of_the_first(
    connect: Connect, endpoints: Endpoints
) -> None:
    async with connect("alice") as alice:
        job = await _job_with_endpoint(alice, endpoints.url("/ok"))
        (endpoint,) = await call_ok(alice, "list_endpoints", {"job_id": job["id"]})
    async with connect("bob") as bob:
        assert await call_ok(bob, "list_jobs") == []
        for name, args in [
            ("get_job", {"job_id": job["id"]}),
            ("list_runs", {"job_id": job["id"]}),
            ("run_job_now", {"job_id": job["id"]}),
            ("archive_job", {"job_id": job["id"]}),
            ("get_endpoint", {"endpoint_id": endpoint["id"]}),
            ("delete_endpoint", {"endpoint_id": endpoint["id"]}),
        ]:
            assert "not found" in await call_error(bob, name, args), name
        with pytest.raises(MCPError, match="not found"):
            await bob.read_resource(f"cronicorn://jobs/{job['id']}/runs")
    async with connect("alice") as alice:
        still = await call_ok(alice, "get_job", {"job_id": job["id"]})
        assert still["status"] == "active"
        assert len(await call_ok(alice, "list_endpoints", {"job_id": job["id"]})) == 1
