"""`cronicorn mcp`: the MCP server over stdio, a client of the REST API.

Everything goes through the API named by `CRONICORN_API_URL` with `CRONICORN_API_KEY` (the
`UserApiClient`), so the assistant sees exactly that key's tenant. stdout is the protocol
channel: logs go to stderr.
"""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from cronicorn.client.user_api import UserApiClient
from cronicorn.mcp.server import build_server


async def serve_stdio(api_url: str, api_key: str) -> None:
    """Serve until the client closes stdin."""
    async with (
        UserApiClient(api_url, api_key) as api,
        stdio_server() as (read_stream, write_stream),
    ):
        server = build_server(lambda _ctx: api)
        await server.run(read_stream, write_stream, server.create_initialization_options())
