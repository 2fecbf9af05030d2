"""How a tool reaches the REST API: one small port, two adapters.

`RestGateway.request` sends one request to a user route and returns the decoded JSON body
(None for 204), or raises `ApiError` carrying the API's own message. Over stdio it is
`UserApiClient` (HTTP to `CRONICORN_API_URL`); on the API server it is `InProcessGateway`,
which calls the same FastAPI app in-process with the caller's bearer key, so tenancy,
validation and error messages are exactly the REST API's.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx2

from cronicorn.client.errors import api_error


class RestGateway(Protocol):
    async def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any: ...


class InProcessGateway:
    """The REST API of this process, as the holder of `authorization` (a bearer header)."""

    def __init__(self, client: httpx2.AsyncClient, authorization: str) -> None:
        self._client = client
        self._headers = {"Authorization": authorization}

    async def request(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        resp = await self._client.request(
            method, path, json=json, params=params, headers=self._headers
        )
        payload: Any = None
        if resp.status_code != 204 and resp.content:
            try:
                payload = resp.json()
            except ValueError:
                payload = None
        if resp.status_code >= 400:
            raise api_error(resp.status_code, payload)
        return payload


def in_process_client(app: Any) -> httpx2.AsyncClient:
    """An HTTP client whose requests go straight into the ASGI `app` (no socket)."""
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx2.AsyncClient(transport=transport, base_url="http://cronicorn.internal")
