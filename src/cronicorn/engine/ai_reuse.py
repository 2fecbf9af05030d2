"""The engine side of `on_change` mode: whether a run asks the model or reuses the job's
last AI decision, and the decision a run leaves behind (see `domain.ai_decision`).

Model involvement per run:

- `every_run` (or a trigger fired): phase 1 and phase 2 as in the seed; the run records
  the trigger (`every_run`, `no_decision`, `expired`, …) in `ai_trigger`.
- reuse: the stored plan runs again (endpoint `condition`s honoured) and the AI's cadence
  is kept (`ai_reused`). If the results then differ materially (`trigger_after_run`), the
  run's results go to phase 2 at once and the next run re-plans.

A decision is remembered only when the model actually made both halves of it (no rules
fallback); a fallback keeps the previous decision, so the next run tries the model again
only if a trigger still fires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cronicorn.ai.config import AIAgentConfig
from cronicorn.domain.ai_decision import (
    Trigger,
    effective_mode,
    mark_pending,
    mark_reused,
    new_decision,
    result_signatures,
    reusable_plan,
    reused_next_run_at,
    trigger_after_run,
    trigger_before_plan,
)
from cronicorn.domain.escalation import is_run_failure
from cronicorn.domain.jmes import evaluate_view
from cronicorn.domain.models import (
    AIDecision,
    AIMode,
    AITrigger,
    EndpointResult,
    JobContext,
    JsonValue,
    Message,
    MessageRole,
    MessageSource,
    PlanDecision,
    PlanSource,
    ScheduleDecision,
    ScheduleProposal,
)

AI_SOURCES = (PlanSource.AI, PlanSource.AI_REPAIRED)


@dataclass(frozen=True, slots=True)
class Gate:
    """What a run does before planning: ask the model (`trigger`) or reuse `reuse`."""

    trigger: Trigger | None
    reuse: AIDecision | None = None


class AIReuse:
    def __init__(self, config: AIAgentConfig) -> None:
        self._config = config

    def gate(self, context: JobContext, now: datetime) -> Gate:
        mode = effective_mode(context.job, AIMode(self._config.mode))
        if mode is AIMode.EVERY_RUN:
            return Gate((AITrigger.EVERY_RUN, "every_run mode"))
        trigger = trigger_before_plan(context, now)
        if trigger is None and context.ai_decision is not None:
            return Gate(None, context.ai_decision)
        return Gate(trigger or (AITrigger.NO_DECISION, "no AI decision yet"))

    @staticmethod
    def reused_plan(context: JobContext, decision: AIDecision) -> PlanDecision:
        plan = reusable_plan(decision, context.endpoints)
        reasoning = f"reused AI plan of {_iso(decision.made_at)}: {plan.reasoning}"
        plan = replace(plan, reasoning=reasoning)
        return PlanDecision(plan=plan, source=PlanSource.AI_REUSED)

    @staticmethod
    def reused_schedule(decision: AIDecision, now: datetime) -> ScheduleDecision:
        at = reused_next_run_at(decision, now)
        proposal = None
        if at is not None:
            proposal = ScheduleProposal(
                next_run_at=at,
                reasoning=f"reused AI decision of {_iso(decision.made_at)}: {decision.reasoning}",
                confidence=decision.confidence or 0.0,
            )
        return ScheduleDecision(proposal=proposal, source=PlanSource.AI_REUSED)

    def change_after_run(
        self,
        context: JobContext,
        decision: AIDecision,
        plan: PlanDecision,
        results: Sequence[EndpointResult],
    ) -> Trigger | None:
        failing = _failing(plan, results)
        signatures = result_signatures(results, _views(context, results))
        return trigger_after_run(decision, signatures, failing, self._config.change_threshold)

    def remember(
        self,
        context: JobContext,
        plan: PlanDecision,
        schedule: ScheduleDecision,
        results: Sequence[EndpointResult],
        now: datetime,
        *,
        previous: AIDecision | None,
        pending: Trigger | None = None,
    ) -> AIDecision | None:
        """The decision to store after a run that asked the model. `pending`: the run
        reused the plan and saw `pending` (the next run re-plans)."""
        proposal = schedule.proposal
        made_by_model = (
            schedule.source in AI_SOURCES
            and schedule.fallback_reason is None
            and proposal is not None
            and (plan.source in AI_SOURCES or pending is not None)
            and plan.fallback_reason is None
        )
        if not made_by_model or proposal is None:
            if previous is not None and pending is not None:
                return mark_pending(previous, pending)
            return previous
        source = (
            plan.source
            if plan.source in AI_SOURCES
            else (previous.plan_source if previous is not None else PlanSource.AI)
        )
        base_plan = previous.plan if pending is not None and previous is not None else plan.plan
        made = new_decision(
            plan=base_plan,
            plan_source=source,
            context=context,
            now=now,
            next_run_at=proposal.next_run_at,
            valid_for_ms=proposal.valid_for_ms,
            ttl_ms=self._config.decision_ttl_ms,
            signatures=result_signatures(results, _views(context, results)),
            failing=_failing(plan, results),
            reasoning=proposal.reasoning,
            confidence=proposal.confidence,
        )
        return mark_pending(made, pending) if pending is not None else made

    @staticmethod
    def reused(decision: AIDecision, now: datetime) -> AIDecision:
        return mark_reused(decision, now)


def asked_context(context: JobContext, trigger: Trigger, now: datetime) -> JobContext:
    """`context` with a note telling the model why it is asked and how long the previous
    decision held (not stored: the prompt's history stays bounded)."""
    decision = context.ai_decision
    if trigger[0] is AITrigger.EVERY_RUN:
        return context
    text = f"Asked now: {trigger[0].value} ({trigger[1]})."
    if decision is not None:
        text = (
            f"The last AI decision ({_iso(decision.made_at)}) was reused in "
            f"{decision.reused_runs} run(s), outcomes unchanged. {text}"
        )
    note = Message(MessageRole.USER, text, MessageSource.ENGINE, now)
    return replace(context, messages=(*context.messages, note))


def model_involved(decision: PlanDecision) -> bool:
    """False for a plain rules plan (no model configured): nothing to record as asked."""
    return (
        decision.source is not PlanSource.RULES
        or decision.ai_calls > 0
        or bool(decision.fallback_reason)
    )


def _failing(plan: PlanDecision, results: Sequence[EndpointResult]) -> bool:
    critical = {c.endpoint_id for c in plan.plan.calls if c.critical}
    return is_run_failure(results, critical)


def _views(
    context: JobContext, results: Sequence[EndpointResult]
) -> dict[str, dict[str, JsonValue]]:
    views = {e.id: e.ai_view for e in context.endpoints if e.ai_view}
    return {
        r.endpoint_id: evaluate_view(views[r.endpoint_id], r.response_body)
        for r in results
        if r.endpoint_id in views and r.response_body is not None
    }


def _iso(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
