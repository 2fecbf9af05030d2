"""The planner port: what the engine asks of a planner, in domain types only.

`OpenAIPlanner` and `RulesPlanner` implement it structurally; the engine
(`cronicorn.engine.ports`, `create_scheduling_engine`) types its planner with it, so mypy
checks the adapters where they are composed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cronicorn.domain.models import EndpointResult, JobContext, PlanDecision, ScheduleDecision


class Planner(Protocol):
    async def plan(self, context: JobContext) -> PlanDecision: ...

    async def schedule(
        self, context: JobContext, plan: PlanDecision, results: Sequence[EndpointResult]
    ) -> ScheduleDecision: ...


def uses_history(planner: object) -> bool:
    """Whether the planner reads a job's past messages and results (`JobContext.messages`,
    `recent_results`). A planner says it does not with a class attribute
    `uses_history = False` (the rules planner); the engine then claims without them, which
    spares the store their reads and the claim response their bytes. Unknown: it does."""
    return bool(getattr(planner, "uses_history", True))
