"""The deterministic planner: no AI, no tokens, always available.

Used without an API key, when the AI fails after repairs and transport retries, and when a
job's daily token budget is spent. It calls every endpoint of the job in endpoint order
(sequentially, or in parallel when `scheduler.rules_strategy` says so) and leaves the next run
to the governor's baseline/backoff policy (`proposal=None`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cronicorn.domain.models import (
    EndpointResult,
    ExecutionStrategy,
    JobContext,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
    ScheduleDecision,
)
from cronicorn.engine.config import SchedulerConfig


class RulesPlanner:
    def __init__(self, scheduler: SchedulerConfig | None = None) -> None:
        self.strategy = ExecutionStrategy((scheduler or SchedulerConfig()).rules_strategy)

    async def plan(self, context: JobContext) -> PlanDecision:
        """Every endpoint, equal priority, endpoint order; no dependencies, none critical."""
        calls = tuple(PlannedCall(endpoint_id=e.id) for e in context.endpoints)
        plan = Plan(
            calls=calls,
            strategy=self.strategy,
            reasoning=f"rules planner: all {len(calls)} endpoint(s), {self.strategy.value}",
            confidence=1.0,
        )
        return PlanDecision(plan=plan, source=PlanSource.RULES)

    async def schedule(
        self, context: JobContext, plan: PlanDecision, results: Sequence[EndpointResult]
    ) -> ScheduleDecision:
        """No proposal: the governor applies the baseline (and backoff after failures)."""
        return ScheduleDecision(proposal=None, source=PlanSource.RULES)

    async def close(self) -> None:
        """Nothing to release; present so every planner can be closed alike."""
