"""`/mcp` on the API server takes the API's bearer keys: without a valid `user` (or `admin`)
key nothing reaches the MCP layer, and the SDK's client cannot connect."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp import MCPError

from tests.mcp.conftest import LiveApi, http_client_for

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


async def _post(api: LiveApi, authorization: str | None) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx2.AsyncClient(timeout=30.0) as http:
        return await http.post(f"{api.url}/mcp", json=INITIALIZE, headers=headers)


@pytest.mark.parametrize(
    ("authorization", "status", "detail"),
    [
        (None, 401, "missing API key"),
        ("Bearer not-a-key", 401, "invalid API key"),
        ("Basic YWxpY2U6c2VjcmV0", 401, "missing API key"),
        ("ops", 403, "this route needs a key with scope admin, user"),
    ],
)
async def test_a_request_without_a_user_key_is_refused(
    live_api: LiveApi, authorization: str | None, status: int, detail: str
) -> None:
    if authorization == "ops":
        authorization = f"Bearer {live_api.keys['ops']}"
    response = await _post(live_api, authorization)
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_user_key_is_let_in(live_api: LiveApi) -> None:
    response = await _post(live_api, f"Bearer {live_api.keys['alice']}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    assert result["serverInfo"]["name"] == "cronicorn"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


async def test_a_wrong_key_cannot_connect_with_the_sdk_client(live_api: LiveApi) -> None:
    async with http_client_for(live_api.url, live_api.keys["alice"]) as client:
        assert (await client.list_tools()).tools  # the same client with a right key works
    with pytest.raises(Exception) as caught:
        async with http_client_for(live_api.url, "not-a-key") as client:
            await client.list_tools()
    assert [type(e) for e in _leaves(caught.value)] == [MCPError], repr(caught.value)
