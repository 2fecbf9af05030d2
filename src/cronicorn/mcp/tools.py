"""The MCP tools: one per user route of the REST API, generated from the route itself.

A `ToolSpec` names a route function of `cronicorn.api.routes` and says what the tool is for.
Everything else comes from FastAPI's own analysis of that route: the HTTP method and path, the
path and query parameters (with their constraints) and the body model. The tool's input schema
is therefore the JSON schema of the same Pydantic models the API validates with, and calling a
tool is calling the route through a `RestGateway`, so validation, tenancy and error messages
are the API's own.

Adding a tool is one `ToolSpec(...)` line in `TOOL_SPECS` (see `cronicorn.mcp.descriptions`
for the texts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin
from urllib.parse import quote

from fastapi.routing import APIRoute
from mcp import types
from pydantic import BaseModel, ConfigDict, create_model

from cronicorn.api.routes import ai, alerts, endpoints, history, jobs, signing
from cronicorn.mcp import descriptions as text

USER_ROUTERS = (
    jobs.router,
    endpoints.router,
    history.router,
    ai.router,
    alerts.router,
    signing.router,
)
"""The routers whose routes are the user operations (a `user` or `admin` key)."""

PATH_PARAM_DESCRIPTIONS = {
    "job_id": "The job's id (from create_job or list_jobs).",
    "endpoint_id": "The endpoint's id (from add_endpoint or list_endpoints).",
    "run_id": "The run's id (from list_runs).",
    "channel_id": "The alert channel's id (from create_alert_channel or list_alert_channels).",
    "channel_ref": "The alert channel's id or its name.",
    "alert_id": "The alert incident's id (from list_alerts).",
}


class ToolInputError(Exception):
    """The arguments cannot even be turned into a request (the API checks everything else)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool: its verb_noun name, the route it calls and what an assistant should know."""

    name: str
    route: Callable[..., Any]
    description: str
    destructive: bool | None = None
    """MCP `destructiveHint`; None: only DELETE is (a rotation that invalidates a secret
    says so explicitly)."""


TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("create_job", jobs.create_job, text.CREATE_JOB),
    ToolSpec("list_jobs", jobs.list_jobs, text.LIST_JOBS),
    ToolSpec("get_job", jobs.get_job, text.GET_JOB),
    ToolSpec("update_job", jobs.update_job, text.UPDATE_JOB),
    ToolSpec("pause_job", jobs.pause_job, text.PAUSE_JOB),
    ToolSpec("resume_job", jobs.resume_job, text.RESUME_JOB),
    ToolSpec("run_job_now", jobs.run_job_now, text.RUN_JOB_NOW),
    ToolSpec("archive_job", jobs.archive_job, text.ARCHIVE_JOB),
    ToolSpec("add_endpoint", endpoints.create_endpoint, text.ADD_ENDPOINT),
    ToolSpec("list_endpoints", endpoints.list_endpoints, text.LIST_ENDPOINTS),
    ToolSpec("get_endpoint", endpoints.get_endpoint, text.GET_ENDPOINT),
    ToolSpec("update_endpoint", endpoints.update_endpoint, text.UPDATE_ENDPOINT),
    ToolSpec("delete_endpoint", endpoints.delete_endpoint, text.DELETE_ENDPOINT),
    ToolSpec("add_message", history.post_message, text.ADD_MESSAGE),
    ToolSpec("list_messages", history.list_messages, text.LIST_MESSAGES),
    ToolSpec("list_runs", history.list_runs, text.LIST_RUNS),
    ToolSpec("get_run", history.get_run, text.GET_RUN),
    ToolSpec("list_errors", history.list_errors, text.LIST_ERRORS),
    ToolSpec("create_alert_channel", alerts.create_channel, text.CREATE_ALERT_CHANNEL),
    ToolSpec("list_alert_channels", alerts.list_channels, text.LIST_ALERT_CHANNELS),
    ToolSpec("get_alert_channel", alerts.get_channel, text.GET_ALERT_CHANNEL),
    ToolSpec("update_alert_channel", alerts.update_channel, text.UPDATE_ALERT_CHANNEL),
    ToolSpec("delete_alert_channel", alerts.delete_channel, text.DELETE_ALERT_CHANNEL),
    ToolSpec("test_alert_channel", alerts.test_channel, text.TEST_ALERT_CHANNEL),
    ToolSpec(
        "rotate_alert_channel_secret",
        alerts.rotate_secret,
        text.ROTATE_ALERT_CHANNEL_SECRET,
        destructive=True,
    ),
    ToolSpec(
        "list_alert_channel_deliveries",
        alerts.channel_deliveries,
        text.LIST_ALERT_CHANNEL_DELIVERIES,
    ),
    ToolSpec("get_default_alert_rule", alerts.get_default_rule, text.GET_DEFAULT_ALERT_RULE),
    ToolSpec("set_default_alert_rule", alerts.put_default_rule, text.SET_DEFAULT_ALERT_RULE),
    ToolSpec("clear_default_alert_rule", alerts.delete_default_rule, text.CLEAR_DEFAULT_ALERT_RULE),
    ToolSpec("get_job_alert_rule", alerts.get_job_rule, text.GET_JOB_ALERT_RULE),
    ToolSpec("set_job_alert_rule", alerts.put_job_rule, text.SET_JOB_ALERT_RULE),
    ToolSpec("clear_job_alert_rule", alerts.delete_job_rule, text.CLEAR_JOB_ALERT_RULE),
    ToolSpec("list_alerts", alerts.list_alerts, text.LIST_ALERTS),
    ToolSpec("get_alert", alerts.get_alert, text.GET_ALERT),
    ToolSpec("list_alert_deliveries", alerts.alert_deliveries, text.LIST_ALERT_DELIVERIES),
    ToolSpec("get_signing_key", signing.show_signing_key, text.GET_SIGNING_KEY),
    ToolSpec(
        "rotate_signing_key", signing.rotate_signing_key, text.ROTATE_SIGNING_KEY, destructive=True
    ),
    ToolSpec("revoke_signing_key", signing.revoke_signing_key, text.REVOKE_SIGNING_KEY),
    ToolSpec("set_hint", jobs.set_hint, text.SET_HINT),
    ToolSpec("clear_hint", jobs.clear_hint, text.CLEAR_HINT),
    ToolSpec("list_run_ai_sessions", ai.list_run_ai_sessions, text.LIST_RUN_AI_SESSIONS),
    ToolSpec("list_decisions", ai.list_decisions, text.LIST_DECISIONS),
    ToolSpec("get_cost", ai.get_cost, text.GET_COST),
)


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    path: str
    query: dict[str, str | int | float]
    body: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RestTool:
    """A tool bound to its route: the MCP definition and the mapping of arguments to a request."""

    name: str
    description: str
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_model: type[BaseModel] | None
    input_schema: dict[str, Any]
    destructive: bool

    def definition(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=self.method == "GET",
                destructive_hint=self.destructive,
                idempotent_hint=self.method in ("GET", "PUT", "PATCH", "DELETE"),
                open_world_hint=False,
            ),
        )

    def request(self, arguments: Mapping[str, Any] | None) -> RestRequest:
        """Split the arguments into path, query and body; the API validates the values."""
        args = dict(arguments or {})
        path = self.path
        for name in self.path_params:
            value = args.pop(name, None)
            if not isinstance(value, str) or not value:
                raise ToolInputError(f"{name}: required, a non-empty string")
            path = path.replace("{" + name + "}", quote(value, safe=""))
        query: dict[str, str | int | float] = {}
        for name in self.query_params:
            value = args.pop(name, None)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ToolInputError(f"{name}: must be a string or a number")
            query[name] = value
        if self.body_model is None:
            if args:
                unknown = ", ".join(sorted(args))
                raise ToolInputError(f"unknown argument(s) {unknown}; {self.name} takes none")
            return RestRequest(self.method, path, query, None)
        return RestRequest(self.method, path, query, args)


def _route_of(spec: ToolSpec) -> APIRoute:
    for router in USER_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.endpoint is spec.route:
                return route
    raise LookupError(f"tool {spec.name}: its route is not on a user router")


def _input_schema(name: str, route: APIRoute, body_model: type[BaseModel] | None) -> dict[str, Any]:
    """The parameters' schema (built from the route's own field infos) merged with the body
    model's JSON schema, which is kept exactly as Pydantic generates it."""
    fields: dict[str, Any] = {}
    for param in route.dependant.path_params + route.dependant.query_params:
        info = param.field_info
        if info.description is None and param.name in PATH_PARAM_DESCRIPTIONS:
            info = copy(info)  # the route's own FieldInfo stays as it is
            info.description = PATH_PARAM_DESCRIPTIONS[param.name]
        fields[param.name] = (info.annotation, info)
    params_model = create_model(  # type: ignore[call-overload]
        f"{name}_parameters", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema: dict[str, Any] = params_model.model_json_schema()
    if body_model is None:
        return schema
    body = body_model.model_json_schema()
    clash = set(schema["properties"]) & set(body.get("properties", {}))
    if clash:
        raise ValueError(f"tool {name}: parameters and body share the names {sorted(clash)}")
    merged = dict(body)
    merged["properties"] = {**schema["properties"], **body.get("properties", {})}
    merged["required"] = [*schema.get("required", []), *body.get("required", [])]
    defs = {**schema.get("$defs", {}), **body.get("$defs", {})}
    if defs:
        merged["$defs"] = defs
    return merged


def _optional_inner(annotation: Any) -> Any:
    """`Model | None` (an optional body) → `Model`; anything else unchanged."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return annotation


def build_tool(spec: ToolSpec) -> RestTool:
    route = _route_of(spec)
    methods = sorted(route.methods or ())
    if len(methods) != 1:
        raise ValueError(f"tool {spec.name}: {route.path} must have one method, has {methods}")
    method = methods[0]
    body_params = route.dependant.body_params
    body_model = _optional_inner(body_params[0].field_info.annotation) if body_params else None
    if body_model is not None and not (
        isinstance(body_model, type) and issubclass(body_model, BaseModel)
    ):
        raise TypeError(f"tool {spec.name}: the body of {route.path} is not a Pydantic model")
    return RestTool(
        name=spec.name,
        description=spec.description,
        method=method,
        path=route.path,
        path_params=tuple(p.name for p in route.dependant.path_params),
        query_params=tuple(p.name for p in route.dependant.query_params),
        body_model=body_model,
        input_schema=_input_schema(spec.name, route, body_model),
        destructive=method == "DELETE" if spec.destructive is None else spec.destructive,
    )


@cache
def rest_tools() -> dict[str, RestTool]:
    """Every tool by name (built once per process)."""
    return {spec.name: build_tool(spec) for spec in TOOL_SPECS}
