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
