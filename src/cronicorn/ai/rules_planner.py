"""The deterministic planner: no AI, no tokens, always available.

Used without an API key, when the AI fails after repairs and transport retries, and when a
job's daily token budget is spent. It calls every endpoint of the job in endpoint order
(sequentially, or in parallel when `scheduler.rules_strategy` says so) and leaves the next run
to the governor's baseline/backoff policy (`proposal=None`).

An endpoint with a `condition` is called only when the condition holds over the results of
the endpoints before it (the executor checks it; otherwise the call is `skipped` with
`condition_not_met`). Such a call depends on every endpoint before it, so a parallel plan
becomes `mixed`: the others still run at once, the conditional ones after what they read.
"""

from __future__ import annotations

from collections.abc import Sequence

from cronicorn.ai.config import RulesStrategy
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


class RulesPlanner:
    uses_history = False
    """Plans from the endpoints alone (see `cronicorn.ai.planner.uses_history`)."""

    def __init__(self, strategy: RulesStrategy = "sequential") -> None:
        self.strategy = ExecutionStrategy(strategy)

    async def plan(self, context: JobContext) -> PlanDecision:
        """Every endpoint, equal priority, endpoint order, none critical; conditional ones
        after the endpoints before them."""
        calls: list[PlannedCall] = []
        for i, e in enumerate(context.endpoints):
            if e.condition:
                before = tuple(p.id for p in context.endpoints[:i])
                calls.append(
                    PlannedCall(endpoint_id=e.id, depends_on=before, condition=e.condition)
                )
            else:
                calls.append(PlannedCall(endpoint_id=e.id))
        strategy = self.strategy
        conditional = sum(1 for c in calls if c.condition)
        if conditional and strategy is ExecutionStrategy.PARALLEL:
            strategy = ExecutionStrategy.MIXED
        reasoning = f"rules planner: all {len(calls)} endpoint(s), {strategy.value}"
        if conditional:
            reasoning += f"; {conditional} only when their condition holds"
        plan = Plan(calls=tuple(calls), strategy=strategy, reasoning=reasoning, confidence=1.0)
        return PlanDecision(plan=plan, source=PlanSource.RULES)

    async def schedule(
        self, context: JobContext, plan: PlanDecision, results: Sequence[EndpointResult]
    ) -> ScheduleDecision:
        """No proposal: the governor applies the baseline (and backoff after failures)."""
        return ScheduleDecision(proposal=None, source=PlanSource.RULES)

    async def close(self) -> None:
        """Nothing to release; present so every planner can be closed alike."""
