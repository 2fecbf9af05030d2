"""Every tool is a REST user route, and its input schema is generated from the API's models:
compared here with the models' own JSON schema and with the API's OpenAPI document, so the
two cannot drift. A new user route without a tool fails `test_every_user_route_has_a_tool`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from cronicorn.api import create_app
from cronicorn.api.deps import UserKey
from cronicorn.mcp.tools import TOOL_SPECS, RestTool, rest_tools
from cronicorn.settings import Settings
from cronicorn.store.secrets import SecretBox

TOOLS = rest_tools()
USER_DEPENDENCY = get_args(UserKey)[1].dependency


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Never started: only its routes and OpenAPI document are read.
    return create_app(Settings(database_url="sqlite://", secret_key=SecretBox.generate_key()))


@pytest.fixture(scope="module")
def openapi(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute of the app, also inside included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _needs_user_key(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is USER_DEPENDENCY:
            return True
        stack.extend(dep.dependencies)
    return False


def _resolved(schema: Any, defs: dict[str, Any]) -> Any:
    """`schema` with every `$ref` replaced by its definition; dropped: titles and
    descriptions (the tools add descriptions to path parameters), and what FastAPI leaves out
    of its OpenAPI document (`default: null`, `additionalProperties`)."""
    if isinstance(schema, list):
        return [_resolved(item, defs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _resolved(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    return {
        key: _resolved(value, defs)
        for key, value in schema.items()
        if key not in ("title", "description", "$defs", "additionalProperties")
        and not (key == "default" and value is None)
    }


def test_every_user_route_has_a_tool(app: FastAPI) -> None:
    user_routes = {
        route.endpoint: f"{method} {route.path}"
        for route in _api_routes(app.routes)
        if _needs_user_key(route)
        for method in route.methods or ()
    }
    assert len(user_routes) >= 18
    tool_routes = {spec.route for spec in TOOL_SPECS}
    missing = sorted(user_routes[r] for r in set(user_routes) - tool_routes)
    assert not missing, f"add a ToolSpec in cronicorn/mcp/tools.py for {missing}"
    assert tool_routes <= set(user_routes)  # a tool only calls what a user key may call
    assert len(TOOLS) == len(TOOL_SPECS) == len(tool_routes)


def test_tool_names_are_verb_noun() -> None:
    verbs = {"create", "list", "get", "update", "delete", "add"}
    verbs |= {"pause", "resume", "run", "archive", "set", "clear"}
    for name in TOOLS:
        verb, _, noun = name.partition("_")
        assert verb in verbs, name
        assert noun, name


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_input_schema_is_the_api_models_schema(name: str, openapi: dict[str, Any]) -> None:
    tool: RestTool = TOOLS[name]
    schema = tool.input_schema
    operation = openapi["paths"][tool.path][tool.method.lower()]
    components = openapi["components"]["schemas"]
    properties = schema["properties"]
    expected_names: set[str] = set()

    # path and query parameters: the same schema as the API publishes
    for param in operation.get("parameters", []):
        expected_names.add(param["name"])
        mine = _resolved(properties[param["name"]], schema.get("$defs", {}))
        assert mine == _resolved(param["schema"], components), param["name"]
        assert (param["name"] in schema.get("required", [])) == param["required"]

    # the body: exactly the model's JSON schema, the model the route validates with
    body = operation.get("requestBody")
    assert (body is None) == (tool.body_model is None)
    if tool.body_model is not None:
        published_body = body["content"]["application/json"]["schema"]
        # An optional body (`Model | None`) is published as anyOf [Model, null].
        refs = [published_body] if "$ref" in published_body else published_body["anyOf"]
        ref = next(r["$ref"] for r in refs if "$ref" in r)
        assert ref == f"#/components/schemas/{tool.body_model.__name__}"
        model = tool.body_model.model_json_schema()
        for field, field_schema in model["properties"].items():
            assert properties[field] == field_schema, field
        assert set(model.get("required", [])) <= set(schema.get("required", []))
        for def_name, definition in model.get("$defs", {}).items():
            assert schema["$defs"][def_name] == definition
        assert schema.get("additionalProperties") is False
        expected_names |= set(model["properties"])
        published = _resolved(components[tool.body_model.__name__], components)
        assert _resolved(model, model.get("$defs", {})) == published

    assert set(properties) == expected_names
    assert schema["type"] == "object"


def test_a_schema_change_in_the_model_is_a_schema_change_of_the_tool() -> None:
    """The tool schema is the model's, not a copy: interval bounds come from IntervalMs."""
    create = TOOLS["create_job"].input_schema["properties"]["interval_ms"]
    assert {"minimum": 1000, "type": "integer"}.items() <= create["anyOf"][0].items()
    limit = TOOLS["list_runs"].input_schema["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 50)
