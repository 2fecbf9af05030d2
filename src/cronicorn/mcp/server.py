"""The MCP server (the SDK's low-level `Server`): tools, concept resources, a runs template.

`build_server(gateway_for)` is the one definition both transports serve; `gateway_for(ctx)`
says how a request reaches the REST API (the stdio process: one `UserApiClient`; the API server:
the app in-process with the caller's key). API errors become tool errors with the API's
message; nothing else about a failure (no stack trace) reaches the client.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import unquote

from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

import cronicorn
from cronicorn.client.errors import ApiError
from cronicorn.errors import BackendUnavailableError
from cronicorn.mcp.descriptions import INSTRUCTIONS
from cronicorn.mcp.gateway import RestGateway
from cronicorn.mcp.tools import RestTool, ToolInputError, rest_tools

log = logging.getLogger("cronicorn.mcp")

GatewayFor = Callable[[ServerRequestContext[Any, Any]], RestGateway]

RESOURCE_NOT_FOUND = -32002
RECENT_RUNS = 20
RUNS_TEMPLATE = "cronicorn://jobs/{job_id}/runs"
_RUNS_URI = re.compile(r"^cronicorn://jobs/(?P<job_id>[^/?#]+)/runs$")


class DocResource:
    """A concept document shipped in `cronicorn/mcp/resources/`."""

    def __init__(self, slug: str, title: str, description: str) -> None:
        self.slug = slug
        self.uri = f"cronicorn://docs/{slug}"
        self.title = title
        self.description = description

    def text(self) -> str:
        return (
            resources.files("cronicorn.mcp")
            .joinpath("resources", f"{self.slug}.md")
            .read_text(encoding="utf-8")
        )

    def definition(self) -> types.Resource:
        return types.Resource(
            uri=self.uri,
            name=self.slug,
            title=self.title,
            description=self.description,
            mime_type="text/markdown",
        )


DOCS = {
    doc.uri: doc
    for doc in (
        DocResource(
            "concepts",
            "Jobs, endpoints, runs and messages",
            "What a job, an endpoint, a run, run-now and a job's messages are.",
        ),
        DocResource(
            "scheduling",
            "How the next run is decided",
            "The governor's rules, the schedule sources, min/max interval, backoff, cron.",
        ),
        DocResource(
            "ai",
            "The AI and the rules planner",
            "When the AI plans and schedules, when the rules planner does, what the AI sees.",
        ),
    )
}


def _json(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _tool_error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)


async def call_tool(tool: RestTool, gateway: RestGateway, arguments: Any) -> types.CallToolResult:
    """Call `tool`'s route with `arguments`; every failure is a tool error with one message."""
    try:
        req = tool.request(arguments)
        payload = await gateway.request(req.method, req.path, json=req.body, params=req.query)
    except ToolInputError as exc:
        return _tool_error(f"{tool.name}: {exc}")
    except (ApiError, BackendUnavailableError) as exc:  # the API's message, or unreachable
        return _tool_error(str(exc))
    except Exception:
        log.exception("tool %s failed", tool.name)
        return _tool_error(f"{tool.name}: internal error (see the server's log)")
    if payload is None:
        return types.CallToolResult(content=[types.TextContent(text=f"{tool.name}: done")])
    return types.CallToolResult(
        content=[types.TextContent(text=_json(payload))],
        structured_content=payload if isinstance(payload, dict) else None,
    )


def build_server(gateway_for: GatewayFor) -> Server[Any]:
    tools = rest_tools()

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.definition() for tool in tools.values()])

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = tools.get(params.name)
        if tool is None:
            return _tool_error(f"unknown tool {params.name!r}; known: {', '.join(tools)}")
        return await call_tool(tool, gateway_for(ctx), params.arguments)

    async def on_list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[doc.definition() for doc in DOCS.values()])

    async def on_list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        runs = types.ResourceTemplate(
            uri_template=RUNS_TEMPLATE,
            name="job_runs",
            title="A job's recent runs",
            description=f"The {RECENT_RUNS} newest runs of a job (as list_runs returns them).",
            mime_type="application/json",
        )
        return types.ListResourceTemplatesResult(resource_templates=[runs])

    async def on_read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        doc = DOCS.get(uri)
        if doc is not None:
            contents = types.TextResourceContents(
                uri=uri, mime_type="text/markdown", text=doc.text()
            )
            return types.ReadResourceResult(contents=[contents])
        match = _RUNS_URI.match(uri)
        if match is None:
            raise MCPError(code=RESOURCE_NOT_FOUND, message=f"unknown resource {uri}")
        result = await call_tool(
            tools["list_runs"],
            gateway_for(ctx),
            {"job_id": unquote(match["job_id"]), "limit": RECENT_RUNS},
        )
        text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
        if result.is_error:
            raise MCPError(code=RESOURCE_NOT_FOUND, message=text)
        contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=text)
        return types.ReadResourceResult(contents=[contents])

    return Server(
        "cronicorn",
        version=cronicorn.__version__,
        title="Cronicorn",
        description="AI-driven HTTP job scheduler: create, inspect and steer jobs.",
        instructions=INSTRUCTIONS,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_resources=on_list_resources,
        on_list_resource_templates=on_list_resource_templates,
        on_read_resource=on_read_resource,
    )
