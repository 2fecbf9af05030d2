"""Property tests of the mixed strategy scheduler with a fake call function (no HTTP)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from cronicorn.domain.models import (
    EndpointResult,
    EndpointStatus,
    ErrorCategory,
    ExecutionStrategy,
    PlannedCall,
)
from cronicorn.executor.strategies import run_calls


@dataclass(frozen=True)
class Case:
    calls: tuple[PlannedCall, ...]
    fails: dict[str, bool]
    yields: dict[str, int]
    limit: int


@st.composite
def dags(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(n)]
    calls = []
    for i, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else set()
        calls.append(
            PlannedCall(
                endpoint_id=name,
                depends_on=tuple(sorted(deps)),
                critical=draw(st.booleans()),
                priority=draw(st.integers(0, 3)),
            )
        )
    order = draw(st.permutations(calls))  # plan order need not be topological
    fails = {name: draw(st.booleans()) for name in names}
    yields = {name: draw(st.integers(0, 4)) for name in names}
    return Case(tuple(order), fails, yields, draw(st.integers(1, 4)))


def expected_skips(case: Case) -> set[str]:
    """Dependents (transitively) of failed critical calls that themselves ran."""
    by_name = {c.endpoint_id: c for c in case.calls}
    skipped: set[str] = set()
    for name in sorted(by_name, key=lambda s: int(s[1:])):  # n0, n1, … is topological
        for dep in by_name[name].depends_on:
            failed_critical = by_name[dep].critical and case.fails[dep] and dep not in skipped
            if dep in skipped or failed_critical:
                skipped.add(name)
    return skipped


async def simulate(case: Case) -> tuple[list[EndpointResult], list[tuple[str, str]], int]:
    log: list[tuple[str, str]] = []
    running = 0
    peak = 0

    async def run(i: int) -> EndpointResult:
        nonlocal running, peak
        name = case.calls[i].endpoint_id
        log.append(("start", name))
        running += 1
        peak = max(peak, running)
        for _ in range(case.yields[name]):
            await asyncio.sleep(0)
        running -= 1
        log.append(("end", name))
        status = EndpointStatus.FAILED if case.fails[name] else EndpointStatus.SUCCESS
        return EndpointResult(name, status)

    def skip(i: int, category: ErrorCategory, reason: str) -> EndpointResult:
        return EndpointResult(
            case.calls[i].endpoint_id, EndpointStatus.SKIPPED, error=reason, error_category=category
        )

    results = await run_calls(
        ExecutionStrategy.MIXED, case.calls, case.limit, run, skip, lambda: False
    )
    return results, log, peak


@settings(max_examples=300, deadline=None)
@given(dags())
def test_mixed_strategy_invariants(case: Case) -> None:
    results, log, peak = asyncio.run(simulate(case))

    # One result per planned call, in plan order.
    assert [r.endpoint_id for r in results] == [c.endpoint_id for c in case.calls]

    # Skips are exactly the transitive dependents of failed critical calls.
    skipped = {r.endpoint_id for r in results if r.status == EndpointStatus.SKIPPED}
    assert skipped == expected_skips(case)
    assert all(
        r.error_category == ErrorCategory.DEPENDENCY_FAILED
        for r in results
        if r.status == EndpointStatus.SKIPPED
    )

    # Every call that ran started only after all its dependencies had finished.
    position = {entry: k for k, entry in enumerate(log)}
    for c in case.calls:
        if c.endpoint_id in skipped:
            assert ("start", c.endpoint_id) not in position
            continue
        for dep in c.depends_on:
            assert position[("end", dep)] < position[("start", c.endpoint_id)]

    assert peak <= case.limit


@settings(max_examples=100, deadline=None)
@given(dags())
def test_sequential_strategy_runs_one_at_a_time_in_dependency_order(case: Case) -> None:
    async def go() -> tuple[list[EndpointResult], list[str], int]:
        started: list[str] = []
        running = 0
        peak = 0

        async def run(i: int) -> EndpointResult:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            started.append(case.calls[i].endpoint_id)
            await asyncio.sleep(0)
            running -= 1
            return EndpointResult(case.calls[i].endpoint_id, EndpointStatus.SUCCESS)

        def skip(i: int, category: ErrorCategory, reason: str) -> EndpointResult:
            return EndpointResult(case.calls[i].endpoint_id, EndpointStatus.SKIPPED)

        results = await run_calls(
            ExecutionStrategy.SEQUENTIAL, case.calls, 4, run, skip, lambda: False
        )
        return results, started, peak

    results, started, peak = asyncio.run(go())
    assert peak == 1
    assert [r.endpoint_id for r in results] == [c.endpoint_id for c in case.calls]
    pos = {name: k for k, name in enumerate(started)}
    for c in case.calls:
        for dep in c.depends_on:
            assert pos[dep] < pos[c.endpoint_id]
