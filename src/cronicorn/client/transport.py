"""`ApiTransport`: the one HTTP connection to the REST API that every client here uses.

It owns the aiohttp session, the base URL, the bearer key, the timeouts, the retry policy
and how an error answer becomes an exception (`ErrorMapper`). Clients add only their routes:
`ApiSchedulerBackend` (the engine, `/api/scheduler/*`, with retries) and `UserApiClient`
(the CLI, the demo and the MCP stdio server: user and admin routes, no retries).

An API that cannot be reached raises `BackendUnavailableError`: at once for a client without
retries, else after the last retry (`<METHOD> <url> failed after N attempts (<last error>)`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import aiohttp
from pydantic import BaseModel

from cronicorn.client.errors import api_error_from_text
from cronicorn.errors import BackendUnavailableError

MAX_THROTTLE_WAIT_S = 60.0

Body: TypeAlias = BaseModel | bytes | None
"""A request body: a wire model (sent as its JSON) or JSON bytes."""
ErrorMapper: TypeAlias = Callable[[int, str, Body], Exception]
"""(status, response text, the request's body) → the exception to raise for an error answer."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures are retried and how long to wait: capped exponential backoff with full
    jitter. Connection errors and timeouts are retried, and answers with a status in
    `statuses`; a 429 waits at least its `Retry-After` (at most 60 s)."""

    max_retries: int = 0
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    statuses: frozenset[int] = frozenset()

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


NO_RETRY = RetryPolicy()


class ApiTransport:
    """Requests to one API with one key. `close()` closes the session if it created it."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy = NO_RETRY,
        errors: ErrorMapper = api_error_from_text,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry = retry
        self._errors = errors
        self._session = session
        self._owns_session = session is None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        path: str,
        body: Body = None,
        *,
        params: Mapping[str, Any] | None = None,
        extra_timeout_s: float = 0.0,
    ) -> str:
        """Send one request (retried per the policy); the response text of a success, else
        the mapped exception for an error answer."""
        url = self.base_url + path
        data = body.model_dump_json().encode() if isinstance(body, BaseModel) else body
        timeout = self._timeout
        if extra_timeout_s:
            timeout = aiohttp.ClientTimeout(total=self._timeout_s + extra_timeout_s)
        retry = self._retry
        last = ""
        wait_s = 0.0
        for attempt in range(retry.max_retries + 1):
            if attempt:
                await asyncio.sleep(max(wait_s, retry.delay(attempt)))
                wait_s = 0.0
            try:
                async with self._client().request(
                    method, url, data=data, params=params, headers=self._headers, timeout=timeout
                ) as resp:
                    text = await resp.text()
                    status = resp.status
                    if status in retry.statuses:
                        last = f"HTTP {status}"
                        if status == 429:
                            last = "HTTP 429 (throttled)"
                            wait_s = _retry_after_s(resp.headers.get("Retry-After"))
                        continue
                    if status >= 400:
                        raise self._errors(status, text, body)
                    return text
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except TimeoutError:
                last = f"no answer within {self._timeout_s + extra_timeout_s:g}s"
            except aiohttp.ClientError as exc:  # not worth retrying (e.g. a malformed URL)
                raise BackendUnavailableError(
                    f"{method} {url}: {type(exc).__name__}: {exc}"
                ) from None
        if retry.max_retries:
            message = f"{method} {url} failed after {retry.max_retries + 1} attempts ({last})"
        else:
            message = f"cannot reach the API at {self.base_url} ({method} {path}): {last}"
        raise BackendUnavailableError(message)


def _retry_after_s(value: str | None) -> float:
    try:
        return min(MAX_THROTTLE_WAIT_S, max(0.0, float(value or 1)))
    except ValueError:
        return 1.0
