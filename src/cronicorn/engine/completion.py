"""Turning a run's state into the single `RunCompletion` write.

Three shapes: completed (the governor clamps the planner's proposal; actions, escalation),
failed (a phase raised: the governor's `fallback_next_run`, with backoff, no AI) and aborted
(shutdown: retried soon, failure count unchanged). Each carries the compact summary message.

Every text a completion writes (response bodies, errors, the summary, reasoning) passes
through the job's `SecretMasker` here, before it leaves the engine for the store or the API:
a target that echoes its request headers must not get them stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from cronicorn.domain.escalation import escalation_level, is_run_failure
from cronicorn.domain.governor import fallback_next_run, next_run_decision
from cronicorn.domain.models import (
    ActionType,
    EndpointResult,
    Escalation,
    JobErrorRecord,
    NextRun,
    PlanDecision,
    PlanSource,
    RecommendedAction,
    RunCompletion,
    RunStatus,
    ScheduleDecision,
)
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.events import EventBus
from cronicorn.engine.run_state import RunState
from cronicorn.engine.summary import run_summary
from cronicorn.observability.redaction import SecretMasker, job_secrets, masker_for
from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine.completion")


@dataclass(frozen=True, slots=True)
class _Decision:
    next_run: NextRun
    reasoning: str
    confidence: float | None
    actions: tuple[RecommendedAction, ...] = ()
    pause: bool = False
    budget_exhausted: bool = False


class CompletionBuilder:
    def __init__(self, config: EngineConfig, clock: Clock, events: EventBus) -> None:
        self._config = config
        self._clock = clock
        self._events = events

    def completed(
        self, state: RunState, decision: PlanDecision, schedule: ScheduleDecision
    ) -> RunCompletion:
        job = state.claimed.context.job
        critical = {c.endpoint_id for c in decision.plan.calls if c.critical}
        failed = is_run_failure(state.results, critical)
        failures = job.consecutive_failures + 1 if failed else 0
        proposal = schedule.proposal
        actions = proposal.recommended_actions if proposal else ()
        now = self._clock.now()
        proposed = proposal.next_run_at if proposal else None
        reused = schedule.source is PlanSource.AI_REUSED
        next_run = next_run_decision(
            job,
            now,
            consecutive_failures=failures,
            ai_next_run_at=None if reused else proposed,
            reused_next_run_at=proposed if reused else None,
            preliminary_next_run_at=decision.plan.preliminary_next_run_at,
            retry_soon=any(a.type is ActionType.RETRY_FAILED_ENDPOINTS for a in actions),
            default_interval_ms=self._config.scheduler.default_interval_ms,
        )
        confident = proposal is not None and proposal.confidence >= self._action_confidence
        pause = confident and any(a.type is ActionType.PAUSE_JOB for a in actions)
        chosen = _Decision(
            next_run,
            proposal.reasoning if proposal else "baseline policy (no proposal)",
            proposal.confidence if proposal else None,
            actions,
            pause,
            _budget_reason(decision.fallback_reason) or _budget_reason(schedule.fallback_reason),
        )
        status = RunStatus.FAILED if failed else RunStatus.COMPLETED
        return self._build(state, status, now, chosen, failures)

    def failed(self, state: RunState, error: JobErrorRecord) -> RunCompletion:
        job = state.claimed.context.job
        now = self._clock.now()
        failures = job.consecutive_failures + 1
        next_run = fallback_next_run(
            job, now, consecutive_failures=failures, default_interval_ms=self._default_interval_ms
        )
        reasoning = f"fallback after {error.phase.value} error ({error.code})"
        chosen = _Decision(next_run, reasoning, None)
        return self._build(state, RunStatus.FAILED, now, chosen, failures, error=error)

    def aborted(self, state: RunState, reason: str) -> RunCompletion:
        job = state.claimed.context.job
        now = self._clock.now()
        failures = job.consecutive_failures
        next_run = fallback_next_run(
            job,
            now,
            consecutive_failures=failures,
            retry_soon=True,
            default_interval_ms=self._default_interval_ms,
        )
        chosen = _Decision(next_run, f"run aborted ({reason}); retried soon", None)
        return self._build(state, RunStatus.ABORTED, now, chosen, failures)

    @property
    def _action_confidence(self) -> float:
        return self._config.ai_agent.action_confidence

    @property
    def _default_interval_ms(self) -> int:
        return self._config.scheduler.default_interval_ms

    def _build(
        self,
        state: RunState,
        status: RunStatus,
        now: datetime,
        chosen: _Decision,
        consecutive_failures: int,
        error: JobErrorRecord | None = None,
    ) -> RunCompletion:
        sched = self._config.scheduler
        escalation = escalation_level(
            state.results, sched.warn_failure_ratio, sched.critical_failure_ratio
        )
        plan = state.plan
        duration_ms = max(0.0, (self._clock.monotonic() - state.started_mono) * 1000)
        quiet = state.quiet and status is RunStatus.COMPLETED
        summary = (
            ""
            if quiet
            else run_summary(
                status=status,
                duration_ms=duration_ms,
                plan=plan.plan if plan else None,
                plan_source=plan.source if plan else None,
                results=state.results,
                endpoints={e.id: e for e in state.claimed.context.endpoints},
                next_run=chosen.next_run,
                reasoning=chosen.reasoning,
                confidence=chosen.confidence,
                actions=chosen.actions,
                escalation=escalation,
                error=f"{error.phase.value}: {error.message}" if error else None,
                paused=chosen.pause,
            )
        )
        self._emit_decision(state, chosen, escalation)
        mask = run_masker(state)
        if error is not None:
            error = mask_error(mask, error)
        return RunCompletion(
            status=status,
            started_at=state.started_at,
            finished_at=max(now, state.started_at),
            plan=plan.plan if plan else None,
            plan_source=plan.source if plan else None,
            results=tuple(mask_result(mask, r) for r in state.results),
            escalation=escalation,
            next_run=chosen.next_run,
            schedule_reasoning=mask.text(chosen.reasoning),
            schedule_confidence=chosen.confidence,
            recommended_actions=chosen.actions,
            usage=state.usage,
            ai_calls=state.ai_calls,
            summary=mask.text(summary),
            errors=(error,) if error else (),
            error=f"{error.phase.value}: {error.message}" if error else None,
            pause=chosen.pause,
            consecutive_failures=consecutive_failures,
            budget_exhausted=chosen.budget_exhausted,
            ai_trigger=state.ai_trigger,
            ai_decision=state.ai_decision,
            cost_usd=state.cost_usd,
            ai_sessions=state.stored_sessions(),
        )

    def _emit_decision(self, state: RunState, chosen: _Decision, escalation: Escalation) -> None:
        ids = {"job_id": state.job_id, "run_id": state.run_id}
        if self._events.wants("on_schedule"):
            self._events.emit(
                "on_schedule",
                **ids,
                next_run_at=chosen.next_run.at,
                source=chosen.next_run.source.value,
                proposed_next_run_at=chosen.next_run.proposed_at,
                reasoning=chosen.reasoning,
                confidence=chosen.confidence,
                recommended_actions=_actions_data(chosen.actions),
                paused=chosen.pause,
            )
        if escalation is not Escalation.NONE:
            failed = sum(1 for r in state.results if r.status.value == "failed")
            logger.warning(
                "escalation %s: %d of %d endpoint call(s) failed",
                escalation.value,
                failed,
                len(state.results),
                extra={"escalation": escalation.value},
            )
            self._events.emit(
                "on_escalation",
                **ids,
                level=escalation.value,
                failed=failed,
                total=len(state.results),
            )


def run_masker(state: RunState) -> SecretMasker:
    """The masker for this run's secrets: the job's, and the executed plan's headers."""
    plan = state.plan.plan if state.plan else None
    return masker_for(job_secrets(state.claimed.context, plan))


def mask_result(mask: SecretMasker, result: EndpointResult) -> EndpointResult:
    if not mask.active or (result.response_body is None and result.error is None):
        return result
    return replace(
        result, response_body=mask.json(result.response_body), error=mask.optional(result.error)
    )


def mask_error(mask: SecretMasker, error: JobErrorRecord) -> JobErrorRecord:
    return replace(error, message=mask.text(error.message))


def _budget_reason(reason: str | None) -> bool:
    """The planner's fallback reason names a spent token budget (see `ai.openai_planner`)."""
    return reason is not None and reason.startswith("budget")


def _actions_data(actions: Sequence[RecommendedAction]) -> list[dict[str, str]]:
    return [
        {"type": a.type.value, "details": a.details, "priority": a.priority.value} for a in actions
    ]
