"""Fake `Planner`s for engine tests: deterministic, scriptable, observable.

`ScriptedPlanner` calls every endpoint of the job (or the ones given) and proposes the
configured schedule; either phase can raise or stall, and it counts its calls and exposes a
`stats` object like the AI planner's, so the engine's stats plumbing can be checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cronicorn.domain.models import (
    EndpointResult,
    ExecutionStrategy,
    JobContext,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
    RecommendedAction,
    ScheduleDecision,
    ScheduleProposal,
    TokenUsage,
)


@dataclass
class FakePlannerStats:
    malformed_responses: int = 0
    repair_attempts: int = 0
    repair_successes: int = 0


@dataclass
class ScriptedPlanner:
    strategy: ExecutionStrategy = ExecutionStrategy.PARALLEL
    critical: bool = False
    next_run_at: datetime | None = None
    confidence: float = 0.9
    actions: tuple[RecommendedAction, ...] = ()
    plan_error: Exception | None = None
    schedule_error: Exception | None = None
    plan_delay_s: float = 0.0
    schedule_delay_s: float = 0.0
    usage: TokenUsage = field(default_factory=lambda: TokenUsage(100, 20, 5, 10))
    plan_fallback_reason: str | None = None
    source: PlanSource = PlanSource.AI
    stats: FakePlannerStats = field(default_factory=FakePlannerStats)
    plan_calls: int = 0
    schedule_calls: int = 0
    seen_results: list[list[EndpointResult]] = field(default_factory=list)

    async def plan(self, context: JobContext) -> PlanDecision:
        self.plan_calls += 1
        if self.plan_delay_s:
            await asyncio.sleep(self.plan_delay_s)
        if self.plan_error is not None:
            raise self.plan_error
        calls = tuple(
            PlannedCall(endpoint_id=e.id, priority=i, critical=self.critical)
            for i, e in enumerate(context.endpoints)
        )
        plan = Plan(calls=calls, strategy=self.strategy, reasoning="call everything")
        return PlanDecision(
            plan=plan,
            source=self.source,
            usage=self.usage,
            ai_calls=1,
            fallback_reason=self.plan_fallback_reason,
        )

    async def schedule(
        self, context: JobContext, plan: PlanDecision, results: Sequence[EndpointResult]
    ) -> ScheduleDecision:
        self.schedule_calls += 1
        self.seen_results.append(list(results))
        if self.schedule_delay_s:
            await asyncio.sleep(self.schedule_delay_s)
        if self.schedule_error is not None:
            raise self.schedule_error
        proposal = ScheduleProposal(
            next_run_at=self.next_run_at,
            reasoning="scripted decision",
            confidence=self.confidence,
            recommended_actions=self.actions,
        )
        return ScheduleDecision(proposal=proposal, source=self.source, usage=self.usage, ai_calls=1)
