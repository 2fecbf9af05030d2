"""`UserApiClient`: the REST API as a user or an operator sees it, for the CLI, the demo and
the MCP stdio server.

Jobs, endpoints, runs and alert channels (any scope), plus the operator's scheduler routes:
workers and stats (engine or admin key), force-unlock (admin key). No retries: a person is
waiting. An error answer raises `ApiError` with the API's own message (field-level for a
422); an API that cannot be reached raises `BackendUnavailableError`.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from cronicorn.client.transport import ApiTransport
from cronicorn.service.alert_schemas import ChannelOut, DeliveryOut
from cronicorn.service.schemas import (
    EndpointCreate,
    EndpointOut,
    JobCreate,
    JobOut,
    RunDetail,
    RunOut,
)
from cronicorn.wire.scheduler import (
    ForceUnlockRequest,
    ForceUnlockResponse,
    SchedulerStats,
    WorkerOut,
)

TIMEOUT_S = 30.0
_jobs = TypeAdapter(list[JobOut])
_endpoints = TypeAdapter(list[EndpointOut])
_runs = TypeAdapter(list[RunOut])
_channels = TypeAdapter(list[ChannelOut])
_workers = TypeAdapter(list[WorkerOut])


class UserApiClient:
    """`async with UserApiClient(url, key) as api: await api.list_jobs()`."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._http = ApiTransport(base_url, api_key, timeout_s=timeout_s)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def __aenter__(self) -> UserApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.close()

    async def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Any route: `json` is sent as the body; the decoded JSON answer (None if empty)."""
        body = jsonlib.dumps(json).encode() if json is not None else None
        text = await self._http.request(method, path, body, params=params)
        return jsonlib.loads(text) if text.strip() else None

    async def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        """A typed route: `body` is sent with only the fields that were set."""
        data = body.model_dump_json(exclude_unset=True).encode() if body is not None else None
        return await self._http.request(method, path, data, params=params)

    # -- jobs and endpoints ---------------------------------------------------------------

    async def create_job(self, data: JobCreate) -> JobOut:
        return JobOut.model_validate_json(await self._call("POST", "/api/jobs", data))

    async def list_jobs(self, limit: int = 100) -> list[JobOut]:
        return _jobs.validate_json(await self._call("GET", "/api/jobs", params={"limit": limit}))

    async def get_job(self, job_id: str) -> JobOut:
        return JobOut.model_validate_json(await self._call("GET", f"/api/jobs/{job_id}"))

    async def resume_job(self, job_id: str) -> JobOut:
        return JobOut.model_validate_json(await self._call("POST", f"/api/jobs/{job_id}/resume"))

    async def create_endpoint(self, job_id: str, data: EndpointCreate) -> EndpointOut:
        text = await self._call("POST", f"/api/jobs/{job_id}/endpoints", data)
        return EndpointOut.model_validate_json(text)

    async def list_endpoints(self, job_id: str) -> list[EndpointOut]:
        return _endpoints.validate_json(await self._call("GET", f"/api/jobs/{job_id}/endpoints"))

    async def runs(self, job_id: str, limit: int = 20) -> list[RunOut]:
        text = await self._call("GET", f"/api/jobs/{job_id}/runs", params={"limit": limit})
        return _runs.validate_json(text)

    async def run(self, run_id: str) -> RunDetail:
        return RunDetail.model_validate_json(await self._call("GET", f"/api/runs/{run_id}"))

    # -- alerts ---------------------------------------------------------------------------

    async def list_channels(self) -> list[ChannelOut]:
        return _channels.validate_json(await self._call("GET", "/api/alerts/channels"))

    async def test_channel(self, channel: str) -> DeliveryOut:
        """Send a test message to the channel (id or name) now; the delivery's outcome."""
        path = f"/api/alerts/channels/{quote(channel, safe='')}/test"
        return DeliveryOut.model_validate_json(await self._call("POST", path))

    # -- the operator's scheduler routes --------------------------------------------------

    async def workers(self) -> list[WorkerOut]:
        """Worker heartbeat rows (engine or admin key)."""
        return _workers.validate_json(await self._call("GET", "/api/scheduler/workers"))

    async def scheduler_stats(self) -> SchedulerStats:
        """Job counts over every tenant (engine or admin key)."""
        return SchedulerStats.model_validate_json(await self._call("GET", "/api/scheduler/stats"))

    async def force_unlock(self, job_ids: Sequence[str] | None, stale_only: bool) -> list[str]:
        """Admin key: release stale or named locks; returns the released job ids."""
        ids = list(job_ids) if job_ids is not None else None
        body = ForceUnlockRequest(job_ids=ids, stale_only=stale_only)
        text = await self._http.request("POST", "/api/scheduler/force-unlock", body)
        return ForceUnlockResponse.model_validate_json(text).released
