"""Request building against a real echo server: headers, bearer token, query, JSON body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor

from .conftest import Serve, by_id, call, endpoint, local_config, plan


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "query": {k: request.query.getall(k) for k in request.query},
            "body": body.decode() if body else None,
        }
    )


@pytest.fixture
async def echo_url(serve: Serve) -> str:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    return f"{await serve(app)}/echo"


async def run_one(ex: HttpExecutor, ep: Any, pc: Any, **kw: Any) -> Any:
    [result] = await ex.execute(plan(pc), by_id(ep), **kw)
    assert result.status == EndpointStatus.SUCCESS, result.error
    return result


async def test_headers_merge_in_order_and_bearer_token(
    echo_url: str, executors: list[HttpExecutor]
) -> None:
    ex = HttpExecutor(local_config(user_agent="cronicorn-test/1"))
    executors.append(ex)
    ep = endpoint(
        "e",
        echo_url,
        headers={"X-Endpoint": "endpoint", "x-shared": "endpoint", "X-Both": "endpoint"},
        bearer_token="s3cret",
    )
    pc = call("e", headers={"X-Shared": "plan", "X-Plan": "plan"})
    result = await run_one(
        ex, ep, pc, default_headers={"X-Job": "job", "X-SHARED": "job", "x-both": "job"}
    )
    headers = result.response_body["headers"]
    assert headers["x-job"] == "job"
    assert headers["x-endpoint"] == "endpoint"
    assert headers["x-both"] == "endpoint"
    assert headers["x-shared"] == "plan"
    assert headers["x-plan"] == "plan"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["user-agent"] == "cronicorn-test/1"
    assert result.content_type == "application/json"


async def test_get_parameters_become_query_string_with_json_for_non_scalars(
    echo_url: str, executors: list[HttpExecutor]
) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint("e", f"{echo_url}?fixed=1")
    pc = call("e", parameters={"n": 3, "s": "x y", "flag": True, "obj": {"a": [1, 2]}})
    result = await run_one(ex, ep, pc)
    echoed = result.response_body
    assert echoed["method"] == "GET"
    assert echoed["query"] == {
        "fixed": ["1"],
        "n": ["3"],
        "s": ["x y"],
        "flag": ["true"],
        "obj": ['{"a":[1,2]}'],
    }
    assert echoed["body"] is None
    assert result.request_bytes == 0


@pytest.mark.parametrize("method", ["DELETE", "HEAD"])
async def test_delete_and_head_use_query_string(
    echo_url: str, executors: list[HttpExecutor], method: str
) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint("e", echo_url, method=method)
    result = await run_one(ex, ep, call("e", parameters={"k": "v"}))
    if method == "DELETE":
        assert result.response_body["query"] == {"k": ["v"]}
    else:
        assert result.response_body is None  # HEAD has no body
        assert result.status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_body_methods_send_default_body_merged_with_parameters(
    echo_url: str, executors: list[HttpExecutor], method: str
) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint("e", echo_url, method=method, body={"keep": 1, "override": "default"})
    result = await run_one(ex, ep, call("e", parameters={"override": "param", "new": [1]}))
    echoed = result.response_body
    assert echoed["method"] == method
    assert json.loads(echoed["body"]) == {"keep": 1, "override": "param", "new": [1]}
    assert echoed["headers"]["content-type"] == "application/json"
    assert result.request_bytes == len(echoed["body"].encode())


async def test_body_methods_without_parameters_send_the_default_body_as_is(
    echo_url: str, executors: list[HttpExecutor]
) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    ep = endpoint("e", echo_url, method="POST", body=[1, 2, 3])
    result = await run_one(ex, ep, call("e"))
    assert json.loads(result.response_body["body"]) == [1, 2, 3]
    no_body = await run_one(ex, endpoint("f", echo_url, method="POST"), call("f"))
    assert no_body.response_body["body"] is None
    assert no_body.request_bytes == 0


@pytest.mark.parametrize(
    ("url", "method"),
    [("not a url", "GET"), ("/relative", "GET"), ("http://x.test/", "TRACE")],
)
async def test_invalid_requests_are_results_not_exceptions(
    executors: list[HttpExecutor], url: str, method: str
) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", url, method=method)))
    assert result.status == EndpointStatus.FAILED
    assert result.error_category == ErrorCategory.INVALID_REQUEST
