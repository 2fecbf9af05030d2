"""A small REST client for the tests: what a user (or an operator) does through the API."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp

T = TypeVar("T")
Json = dict[str, Any]


class ApiError(AssertionError):
    """The API answered with an unexpected status."""


class Api:
    """`Authorization: Bearer <key>` calls against one `cronicorn serve`."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=30),
                # below uvicorn's 5 s keep-alive, so a pooled connection is never reused
                # just as the server closes it
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=2),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self, method: str, path: str, body: Json | None = None, expect: Iterable[int] = (200, 201)
    ) -> Any:
        for attempt in (1, 2):
            try:
                return await self._call_once(method, path, body, tuple(expect))
            except aiohttp.ClientConnectionError:
                if method != "GET" or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _call_once(
        self, method: str, path: str, body: Json | None, expect: tuple[int, ...]
    ) -> Any:
        async with self._client().request(method, f"{self.base_url}{path}", json=body) as resp:
            data = await resp.json(content_type=None) if resp.status != 204 else None
            if resp.status not in expect:
                raise ApiError(f"{method} {path} -> {resp.status}: {data}")
            return data

    # -- user routes ---------------------------------------------------------------------

    async def create_job(self, name: str, **fields: Any) -> Json:
        body = {"name": name, "definition": f"End-to-end test job {name}.", **fields}
        for key in ("next_run_at", "paused_until"):
            if isinstance(body.get(key), datetime):
                body[key] = iso(body[key])
        job: Json = await self.call("POST", "/api/jobs", body)
        return job

    async def add_endpoint(self, job_id: str, name: str, url: str, **fields: Any) -> Json:
        body = {"name": name, "url": url, **fields}
        endpoint: Json = await self.call("POST", f"/api/jobs/{job_id}/endpoints", body)
        return endpoint

    async def resume(self, job_id: str) -> Json:
        job: Json = await self.call("POST", f"/api/jobs/{job_id}/resume")
        return job

    async def job(self, job_id: str) -> Json:
        job: Json = await self.call("GET", f"/api/jobs/{job_id}")
        return job

    async def jobs(self) -> list[Json]:
        jobs: list[Json] = await self.call("GET", "/api/jobs?limit=1000")
        return jobs

    async def runs(self, job_id: str) -> list[Json]:
        """Newest first."""
        runs: list[Json] = await self.call("GET", f"/api/jobs/{job_id}/runs?limit=1000")
        return runs

    async def run(self, run_id: str) -> Json:
        run: Json = await self.call("GET", f"/api/runs/{run_id}")
        return run

    async def messages(self, job_id: str) -> list[Json]:
        messages: list[Json] = await self.call("GET", f"/api/jobs/{job_id}/messages?limit=1000")
        return messages

    async def errors(self, job_id: str) -> list[Json]:
        errors: list[Json] = await self.call("GET", f"/api/jobs/{job_id}/errors?limit=1000")
        return errors

    # -- engine routes -------------------------------------------------------------------

    async def workers(self) -> list[Json]:
        workers: list[Json] = await self.call("GET", "/api/scheduler/workers")
        return workers


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def gather_limited(calls: Iterable[Awaitable[T]], limit: int = 16) -> list[T]:
    """Await all of `calls` with at most `limit` in flight (order kept)."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        try:
            async with gate:
                return await call
        finally:
            if inspect.iscoroutine(call):
                call.close()  # cancelled before it started: no "never awaited" warning

    pending = list(calls)
    async with asyncio.TaskGroup() as group:  # the first failure cancels the rest
        tasks = [group.create_task(one(c)) for c in pending]
    return [task.result() for task in tasks]


async def wait_until(
    check: Callable[[], Awaitable[T]], timeout_s: float, what: str, interval_s: float = 0.2
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last})")
        await asyncio.sleep(interval_s)
