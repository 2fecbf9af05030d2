"""Strategies against a real server: order, critical failure, dependency skips, caps."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain.models import EndpointStatus, ErrorCategory, PlannedCall
from cronicorn.errors import ValidationFailed
from cronicorn.executor import HttpExecutor
from cronicorn.executor.strategies import topological_order

from .conftest import InFlightCounter, Serve, by_id, call, endpoint, local_config, plan


class Recorder:
    """Server that logs start/finish of /e/{name}; ?status=N answers N, ?delay=S waits."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.counter = InFlightCounter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/e/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.log.append(("start", name))
        await self.counter.around(float(request.query.get("delay", "0")))
        self.log.append(("end", name))
        return web.Response(status=int(request.query.get("status", "200")), text=name)

    def started(self) -> list[str]:
        return [n for kind, n in self.log if kind == "start"]

    def index(self, kind: str, name: str) -> int:
        return self.log.index((kind, name))


@pytest.fixture
async def rec(serve: Serve) -> tuple[Recorder, str]:
    recorder = Recorder()
    return recorder, await serve(recorder.app())


def ep(base: str, name: str, query: str = "") -> tuple[str, str]:
    return name, f"{base}/e/{name}{'?' + query if query else ''}"


async def test_sequential_runs_in_priority_order_and_skips_after_critical_failure(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config(max_endpoint_retries=0))
    executors.append(ex)
    eps = by_id(
        endpoint("a", f"{base}/e/a"),
        endpoint("b", f"{base}/e/b?status=500"),
        endpoint("c", f"{base}/e/c"),
        endpoint("d", f"{base}/e/d"),
    )
    p = plan(
        call("d", priority=9),
        call("c", priority=5),
        call("a", priority=1),
        call("b", priority=2, critical=True),
    )
    results = await ex.execute(p, eps)
    assert [r.endpoint_id for r in results] == ["d", "c", "a", "b"]
    assert server.started() == ["a", "b"]
    by = {r.endpoint_id: r for r in results}
    assert by["a"].status == EndpointStatus.SUCCESS
    assert by["b"].status == EndpointStatus.FAILED
    assert by["b"].error_category == ErrorCategory.HTTP_5XX
    for skipped in ("c", "d"):
        assert by[skipped].status == EndpointStatus.SKIPPED
        assert by[skipped].error_category == ErrorCategory.CRITICAL_FAILURE
        assert "b" in (by[skipped].error or "")


async def test_sequential_non_critical_failure_does_not_stop_the_run(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config(max_endpoint_retries=0))
    executors.append(ex)
    eps = by_id(endpoint("a", f"{base}/e/a?status=404"), endpoint("b", f"{base}/e/b"))
    results = await ex.execute(plan(call("a"), call("b")), eps)
    assert [r.status for r in results] == [EndpointStatus.FAILED, EndpointStatus.SUCCESS]
    assert results[0].error_category == ErrorCategory.HTTP_4XX
    assert server.started() == ["a", "b"]


async def test_parallel_respects_plan_concurrency_limit(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config(max_concurrency=10))
    executors.append(ex)
    names = [f"p{i}" for i in range(12)]
    eps = by_id(*(endpoint(n, f"{base}/e/{n}?delay=0.05") for n in names))
    results = await ex.execute(plan(*(call(n) for n in names), strategy="parallel", limit=3), eps)
    assert all(r.status == EndpointStatus.SUCCESS for r in results)
    assert [r.endpoint_id for r in results] == names
    assert server.counter.max == 3


async def test_global_cap_bounds_concurrent_executes(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config(max_concurrency=4))
    executors.append(ex)

    async def one_job(job: int) -> None:
        names = [f"j{job}-{i}" for i in range(6)]
        eps = by_id(*(endpoint(n, f"{base}/e/{n}?delay=0.05") for n in names))
        results = await ex.execute(plan(*(call(n) for n in names), strategy="parallel"), eps)
        assert all(r.status == EndpointStatus.SUCCESS for r in results)

    await asyncio.gather(*(one_job(j) for j in range(3)))
    assert server.counter.total == 18
    assert server.counter.max == 4


async def test_mixed_diamond_starts_each_call_when_its_own_deps_finish(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config())
    executors.append(ex)
    # a → (b slow, c fast) → d ; e depends only on c, so it must not wait for b.
    eps = by_id(
        endpoint("a", f"{base}/e/a"),
        endpoint("b", f"{base}/e/b?delay=0.3"),
        endpoint("c", f"{base}/e/c"),
        endpoint("d", f"{base}/e/d"),
        endpoint("e", f"{base}/e/e"),
    )
    p = plan(
        call("d", depends_on=("b", "c")),
        call("b", depends_on=("a",)),
        call("c", depends_on=("a",)),
        call("a"),
        call("e", depends_on=("c",)),
        strategy="mixed",
    )
    results = await ex.execute(p, eps)
    assert all(r.status == EndpointStatus.SUCCESS for r in results)
    assert [r.endpoint_id for r in results] == ["d", "b", "c", "a", "e"]
    assert server.index("end", "a") < server.index("start", "b")
    assert server.index("end", "a") < server.index("start", "c")
    assert server.index("end", "b") < server.index("start", "d")
    assert server.index("end", "c") < server.index("start", "d")
    assert server.index("start", "e") < server.index("end", "b")  # not in waves


async def test_mixed_skips_dependents_of_failed_critical_transitively(
    rec: tuple[Recorder, str], executors: list[HttpExecutor]
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config(max_endpoint_retries=0))
    executors.append(ex)
    eps = by_id(
        endpoint("crit", f"{base}/e/crit?status=500"),
        endpoint("soft", f"{base}/e/soft?status=500"),
        endpoint("x", f"{base}/e/x"),
        endpoint("y", f"{base}/e/y"),
        endpoint("z", f"{base}/e/z"),
        endpoint("free", f"{base}/e/free"),
    )
    p = plan(
        call("crit", critical=True),
        call("soft"),
        call("x", depends_on=("crit",)),
        call("y", depends_on=("x",)),
        call("z", depends_on=("soft",)),
        call("free"),
        strategy="mixed",
    )
    by = {r.endpoint_id: r for r in await ex.execute(p, eps)}
    assert by["crit"].status == EndpointStatus.FAILED
    assert by["soft"].status == EndpointStatus.FAILED
    for name in ("x", "y"):
        assert by[name].status == EndpointStatus.SKIPPED
        assert by[name].error_category == ErrorCategory.DEPENDENCY_FAILED
        assert by[name].attempts == 0
    assert by["z"].status == EndpointStatus.SUCCESS  # non-critical dependency failed: still runs
    assert by["free"].status == EndpointStatus.SUCCESS
    assert sorted(server.started()) == ["crit", "free", "soft", "z"]


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ((call("a", depends_on=("b",)), call("b", depends_on=("a",))), "cycle"),
        (
            (
                call("a", depends_on=("c",)),
                call("b", depends_on=("a",)),
                call("c", depends_on=("b",)),
            ),
            "cycle",
        ),
        ((call("a"), call("a")), "twice"),
        ((call("a"), call("nope")), "unknown endpoint"),
        ((call("a", depends_on=("ghost",)),), "not in the plan"),
        ((call("a", depends_on=("a",)),), "itself"),
    ],
)
@pytest.mark.parametrize("strategy", ["sequential", "parallel", "mixed"])
async def test_invalid_plans_are_rejected_before_any_call(
    rec: tuple[Recorder, str],
    executors: list[HttpExecutor],
    calls: tuple[object, ...],
    message: str,
    strategy: str,
) -> None:
    server, base = rec
    ex = HttpExecutor(local_config())
    executors.append(ex)
    eps = by_id(*(endpoint(n, f"{base}/e/{n}") for n in "abc"))
    with pytest.raises(ValidationFailed, match=message):
        await ex.execute(plan(*calls, strategy=strategy), eps)  # type: ignore[arg-type]
    assert server.log == []


async def test_empty_plan_returns_no_results(executors: list[HttpExecutor]) -> None:
    ex = HttpExecutor(local_config())
    executors.append(ex)
    assert await ex.execute(plan(), {}) == []


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8))
def test_order_without_dependencies_is_priority_then_plan_order(priorities: list[int]) -> None:
    """The no-dependency shortcut of `topological_order` orders exactly as its graph walk:
    the same calls behind an always-ready extra root give the same order after it."""
    calls = [PlannedCall(endpoint_id=f"e{i}", priority=p) for i, p in enumerate(priorities)]
    root = PlannedCall(endpoint_id="root", priority=-1)
    walked = topological_order(
        [
            root,
            *(
                PlannedCall(endpoint_id=c.endpoint_id, priority=c.priority, depends_on=("root",))
                for c in calls
            ),
        ]
    )
    assert walked is not None
    assert topological_order(calls) == [i - 1 for i in walked[1:]]
