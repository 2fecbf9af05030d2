"""A small client for the user and admin routes of the REST API, for the CLI and the demo.

aiohttp, like the rest of the project. Error responses become `CliError` with the API's own
message (field-level for 422), so a command prints one readable line.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from cronicorn.wire.scheduler import ForceUnlockRequest, ForceUnlockResponse, SchedulerStats, WorkerOut
from cronicorn.cli.common import CliError
from cronicorn.cli.compose import ApiTarget
from cronicorn.service.alert_schemas import ChannelOut, DeliveryOut
from cronicorn.service.schemas import (
    EndpointCreate,
    EndpointOut,
    JobCreate,
    JobOut,
    RunDetail,
    RunOut,
)

TIMEOUT_S = 30.0


def _detail(status: int, payload: Any) -> str:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict))
    if detail:
        return str(detail)
    return f"HTTP {status}"


class ApiError(CliError):
    """The API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def api_error(status: int, payload: Any) -> ApiError:
    """The `ApiError` for an error response: the API's own message (field-level for 422)."""
    detail = _detail(status, payload)
    return ApiError(status, detail if status == 404 else f"API {status}: {detail}")


class ApiClient:
    """`async with ApiClient(target) as api: await api.list_jobs()`."""

    def __init__(self, target: ApiTarget, timeout_s: float = TIMEOUT_S) -> None:
        self._target = target
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self._target.key}"}, timeout=self._timeout
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        if self._session is None:
            await self.__aenter__()
        assert self._session is not None
        url = f"{self._target.url}{path}"
        try:
            async with self._session.request(method, url, json=json, params=params) as resp:
                payload = await resp.json(content_type=None) if resp.status != 204 else None
                if resp.status >= 400:
                    raise api_error(resp.status, payload)
                return payload
        except aiohttp.ClientError as exc:
            raise CliError(f"cannot reach the API at {self._target.url}: {exc}") from None
        except TimeoutError:
            raise CliError(f"the API at {self._target.url} did not answer in time") from None

    # -- jobs and endpoints ---------------------------------------------------------------

    async def create_job(self, data: JobCreate) -> JobOut:
        body = data.model_dump(mode="json", exclude_unset=True)
        return JobOut.model_validate(await self.request("POST", "/api/jobs", body))

    async def list_jobs(self, limit: int = 100) -> list[JobOut]:
        rows = await self.request("GET", "/api/jobs", params={"limit": limit})
        return [JobOut.model_validate(row) for row in rows]

    async def get_job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(await self.request("GET", f"/api/jobs/{job_id}"))

    async def resume_job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(await self.request("POST", f"/api/jobs/{job_id}/resume"))

    async def create_endpoint(self, job_id: str, data: EndpointCreate) -> EndpointOut:
        body = data.model_dump(mode="json", exclude_unset=True)
        payload = await self.request("POST", f"/api/jobs/{job_id}/endpoints", body)
        return EndpointOut.model_validate(payload)

    async def list_endpoints(self, job_id: str) -> list[EndpointOut]:
        rows = await self.request("GET", f"/api/jobs/{job_id}/endpoints")
        return [EndpointOut.model_validate(row) for row in rows]

    async def runs(self, job_id: str, limit: int = 20) -> list[RunOut]:
        rows = await self.request("GET", f"/api/jobs/{job_id}/runs", params={"limit": limit})
        return [RunOut.model_validate(row) for row in rows]

    async def run(self, run_id: str) -> RunDetail:
        return RunDetail.model_validate(await self.request("GET", f"/api/runs/{run_id}"))

    # -- alerts ---------------------------------------------------------------------------

    async def list_channels(self) -> list[ChannelOut]:
        rows = await self.request("GET", "/api/alerts/channels")
        return [ChannelOut.model_validate(row) for row in rows]

    async def test_channel(self, channel: str) -> DeliveryOut:
        """Send a test message to the channel (id or name) now; the delivery's outcome."""
        path = f"/api/alerts/channels/{quote(channel, safe='')}/test"
        return DeliveryOut.model_validate(await self.request("POST", path))

    # -- scheduler admin ------------------------------------------------------------------

    # The scheduler routes' bodies are the API's own wire models (`cronicorn.api.wire`).

    async def workers(self) -> list[WorkerOut]:
        """Worker heartbeat rows (engine or admin key)."""
        rows = await self.request("GET", "/api/scheduler/workers")
        return [WorkerOut.model_validate(row) for row in rows]

    async def scheduler_stats(self) -> SchedulerStats:
        """Job counts over every tenant (engine or admin key)."""
        return SchedulerStats.model_validate(await self.request("GET", "/api/scheduler/stats"))

    async def force_unlock(self, job_ids: Sequence[str] | None, stale_only: bool) -> list[str]:
        """Admin key: release stale or named locks; returns the released job ids."""
        ids = list(job_ids) if job_ids is not None else None
        body = ForceUnlockRequest(job_ids=ids, stale_only=stale_only).model_dump(mode="json")
        payload = await self.request("POST", "/api/scheduler/force-unlock", body)
        return ForceUnlockResponse.model_validate(payload).released
