"""`/mcp` on the API server: the MCP tools over streamable HTTP, behind the API's bearer keys.

Stateless (each POST stands alone, no session to hijack or to pin to one API replica), JSON
responses. A request without a valid `user` or `admin` key is refused before it reaches the
MCP layer (401/403, the API's own authentication and messages); the tools then call the
REST API in-process with the same key, so a caller sees exactly its own tenant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cronicorn.api.deps import authenticate, require
from cronicorn.domain.models import Scope as KeyScope
from cronicorn.mcp.gateway import InProcessGateway, in_process_client
from cronicorn.mcp.server import build_server

MCP_PATH = "/mcp"
_user_or_admin = require(KeyScope.USER, KeyScope.ADMIN)


class McpEndpoint:
    """The ASGI app served at `/mcp`; `running(app)` belongs in the API's lifespan."""

    def __init__(self) -> None:
        self.server = build_server(self._gateway_for)
        self._manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True
        )
        self._client: httpx2.AsyncClient | None = None

    def mount(self, app: FastAPI) -> None:
        app.router.routes.append(Route(MCP_PATH, endpoint=self))

    @asynccontextmanager
    async def running(self, app: FastAPI) -> AsyncIterator[None]:
        """Serve `/mcp` while the block runs. The SDK's session manager holds a task group,
        which must be left in the task that entered it; a lifespan may be entered and left in
        different tasks (test fixtures do), so the manager lives in a task of its own."""
        started, stop = asyncio.Event(), asyncio.Event()

        async def own_the_manager() -> None:
            async with self._manager.run():
                started.set()
                await stop.wait()

        async with in_process_client(app) as client:
            task = asyncio.create_task(own_the_manager(), name="cronicorn-mcp")
            ready = asyncio.create_task(started.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                ready.cancel()
                task.result()  # it failed to start: raise that
            self._client = client
            try:
                yield
            finally:
                self._client = None
                stop.set()
                await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        refusal = await _refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._manager.handle_request(scope, receive, send)

    def _gateway_for(self, ctx: ServerRequestContext[Any, Any]) -> InProcessGateway:
        request = ctx.request
        if not isinstance(request, Request) or self._client is None:
            raise RuntimeError("the HTTP MCP endpoint serves only HTTP requests while running")
        return InProcessGateway(self._client, request.headers["authorization"])


async def _refusal(request: Request) -> JSONResponse | None:
    """The API's answer to a missing, invalid or wrongly scoped key; None when it may pass."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    credentials = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=key.strip())
        if scheme.lower() == "bearer" and key.strip()
        else None
    )
    try:
        await _user_or_admin(await authenticate(request, credentials))
    except HTTPException as exc:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    return None
