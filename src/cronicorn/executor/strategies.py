"""Execution strategies: in which order and how concurrently planned calls run.

Pure scheduling, separate from HTTP: a strategy receives a `run(index)` coroutine that
performs call `index` and never raises for endpoint failures, and a `skip(index, category,
reason)` factory for calls that are not made. That keeps the graph logic property-testable
with a fake `run`.

- sequential: one at a time in priority order (lower `priority` first, plan order breaks
  ties; a call never runs before its `depends_on`); after a failed critical call the rest are
  skipped with `critical_failure`.
- parallel: up to `limit` at once, in priority order; dependencies are not waited for.
- mixed: a dependency graph; each call starts as soon as its own dependencies have finished
  (not in waves), up to `limit` at once. Dependents of a failed critical call, and
  transitively their dependents, are skipped with `dependency_failed`; dependents of a failed
  non-critical call still run.

After an external abort, calls that have not started are recorded as `aborted`.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from cronicorn.domain.models import (
    EndpointResult,
    EndpointStatus,
    ErrorCategory,
    ExecutionStrategy,
    PlannedCall,
)
from cronicorn.errors import ValidationFailed

RunCall = Callable[[int], Awaitable[EndpointResult]]
SkipCall = Callable[[int, ErrorCategory, str], EndpointResult]
IsAborted = Callable[[], bool]
NOT_STARTED = "run aborted before this call started"


def validate_calls(calls: Sequence[PlannedCall], known_ids: Mapping[str, object]) -> list[int]:
    """Raise ValidationFailed for unknown or duplicate ids, unknown/self dependencies and
    cycles, before anything is called (the planner validates too; this is the last line).
    Returns the calls' topological order (see `topological_order`)."""
    errors: list[str] = []
    seen: set[str] = set()
    for i, call in enumerate(calls):
        if call.endpoint_id not in known_ids:
            errors.append(f"calls[{i}]: unknown endpoint id {call.endpoint_id!r}")
        if call.endpoint_id in seen:
            errors.append(f"calls[{i}]: endpoint {call.endpoint_id!r} is planned twice")
        seen.add(call.endpoint_id)
    for i, call in enumerate(calls):
        for dep in call.depends_on:
            if dep == call.endpoint_id:
                errors.append(f"calls[{i}]: {dep!r} depends on itself")
            elif dep not in seen:
                errors.append(f"calls[{i}]: dependency {dep!r} is not in the plan")
    order = None if errors else topological_order(calls)
    if order is None:
        if not errors:
            errors.append("dependency cycle among planned calls")
        raise ValidationFailed(errors)
    return order


def _dependency_graph(calls: Sequence[PlannedCall]) -> tuple[list[int], list[list[int]]]:
    """Per call (by index): how many of its dependencies have not finished yet, and which
    calls depend on it."""
    index = {c.endpoint_id: i for i, c in enumerate(calls)}
    deps = [{index[d] for d in c.depends_on if d in index} for c in calls]
    dependents: list[list[int]] = [[] for _ in calls]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    return [len(d) for d in deps], dependents


def topological_order(calls: Sequence[PlannedCall]) -> list[int] | None:
    """Indexes in dependency order, lower priority value (then plan order) first among
    ready calls; None if there is a cycle."""
    if not any(c.depends_on for c in calls):  # all ready at once (most plans): no graph
        return sorted(range(len(calls)), key=lambda i: (calls[i].priority, i))
    waiting, dependents = _dependency_graph(calls)
    ready = [(calls[i].priority, i) for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (calls[j].priority, j))
    return order if len(order) == len(calls) else None


def run_calls(
    strategy: ExecutionStrategy,
    calls: Sequence[PlannedCall],
    limit: int,
    run: RunCall,
    skip: SkipCall,
    aborted: IsAborted,
    order: list[int] | None = None,
) -> Coroutine[Any, Any, list[EndpointResult]]:
    """Awaitable of one result per call, in plan order. `calls` must have passed
    `validate_calls` (whose return value may be passed as `order`). A plain function
    returning the strategy's coroutine, to keep the await chain of every call short."""
    if strategy == ExecutionStrategy.MIXED:
        return _mixed(calls, max(1, limit), run, skip, aborted)
    if order is None:
        order = topological_order(calls) or list(range(len(calls)))
    if strategy == ExecutionStrategy.PARALLEL:
        return _parallel(calls, order, max(1, limit), run, skip, aborted)
    return _sequential(calls, order, run, skip, aborted)


def _failed_critically(call: PlannedCall, result: EndpointResult) -> bool:
    return call.critical and result.status == EndpointStatus.FAILED


async def _sequential(
    calls: Sequence[PlannedCall],
    order: list[int],
    run: RunCall,
    skip: SkipCall,
    aborted: IsAborted,
) -> list[EndpointResult]:
    results: list[EndpointResult | None] = [None] * len(calls)
    failed: str | None = None
    for i in order:
        if aborted():
            results[i] = skip(i, ErrorCategory.ABORTED, NOT_STARTED)
        elif failed is not None:
            results[i] = skip(
                i, ErrorCategory.CRITICAL_FAILURE, f"critical endpoint {failed} failed"
            )
        else:
            result = results[i] = await run(i)
            if _failed_critically(calls[i], result):
                failed = calls[i].endpoint_id
    return [r for r in results if r is not None]


async def _parallel(
    calls: Sequence[PlannedCall],
    order: list[int],
    limit: int,
    run: RunCall,
    skip: SkipCall,
    aborted: IsAborted,
) -> list[EndpointResult]:
    results: list[EndpointResult | None] = [None] * len(calls)
    queue = iter(order)

    async def worker() -> None:
        for i in queue:
            if aborted():
                results[i] = skip(i, ErrorCategory.ABORTED, NOT_STARTED)
            else:
                results[i] = await run(i)

    workers = min(limit, len(calls))
    if workers == 1:
        await worker()
    else:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    return [r for r in results if r is not None]


async def _mixed(
    calls: Sequence[PlannedCall],
    limit: int,
    run: RunCall,
    skip: SkipCall,
    aborted: IsAborted,
) -> list[EndpointResult]:
    waiting, dependents = _dependency_graph(calls)
    blocked_by: list[str | None] = [None] * len(calls)
    results: list[EndpointResult | None] = [None] * len(calls)
    slots = asyncio.Semaphore(limit)

    async with asyncio.TaskGroup() as group:

        def finish(i: int, result: EndpointResult) -> None:
            # Iterative: a skip can cascade through a long chain of dependents.
            stack = [(i, result)]
            while stack:
                k, res = stack.pop()
                results[k] = res
                culprit = blocked_by[k]
                if _failed_critically(calls[k], res):
                    culprit = calls[k].endpoint_id
                for j in dependents[k]:
                    if culprit is not None and blocked_by[j] is None:
                        blocked_by[j] = culprit
                    waiting[j] -= 1
                    if waiting[j] == 0:
                        ready = start(j)
                        if ready is not None:
                            stack.append((j, ready))

        def start(j: int) -> EndpointResult | None:
            """Launch call j, or return its skip result to be finished by the caller."""
            if blocked_by[j] is not None:
                reason = f"dependency failed: critical endpoint {blocked_by[j]} failed"
                return skip(j, ErrorCategory.DEPENDENCY_FAILED, reason)
            if aborted():
                return skip(j, ErrorCategory.ABORTED, NOT_STARTED)
            group.create_task(call(j))
            return None

        async def call(j: int) -> None:
            async with slots:
                if aborted():
                    res = skip(j, ErrorCategory.ABORTED, NOT_STARTED)
                else:
                    res = await run(j)
            finish(j, res)

        for i in sorted(range(len(calls)), key=lambda k: calls[k].priority):
            if waiting[i] == 0:
                ready = start(i)
                if ready is not None:
                    finish(i, ready)
    return [r for r in results if r is not None]
