"""Per-run bookkeeping shared by the pipeline and the completion builder."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from cronicorn.domain.models import (
    AIDecision,
    AISession,
    AITrigger,
    ClaimedJob,
    EndpointResult,
    ErrorPhase,
    JobErrorRecord,
    NextRun,
    PlanDecision,
    ScheduleDecision,
    TokenUsage,
)

MAX_ERROR_CHARS = 2_000


class Aborted(Exception):
    """The run was stopped from outside (shutdown or lost lease)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PhaseFailure(Exception):
    """A phase raised; carries the phase so that the error is recorded once, with it."""

    def __init__(self, phase: ErrorPhase, cause: BaseException) -> None:
        super().__init__(f"{phase.value}: {cause}")
        self.record = error_record(phase, cause)


def error_record(phase: ErrorPhase, cause: BaseException) -> JobErrorRecord:
    message = (str(cause) or repr(cause))[:MAX_ERROR_CHARS]
    return JobErrorRecord(phase=phase, code=type(cause).__name__[:64], message=message)


@dataclass(slots=True)
class RunState:
    """What a run has gathered so far; a failure in a later phase keeps the earlier parts."""

    claimed: ClaimedJob
    started_at: datetime
    started_mono: float
    cycle_id: str | None = None
    plan: PlanDecision | None = None
    results: list[EndpointResult] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    ai_calls: int = 0
    fallbacks: int = 0
    next_run: NextRun | None = None
    """Set once the outcome is written: the next run the store now holds."""
    ai_trigger: AITrigger | None = None
    """Why the model was asked (None: the decision was reused, or no model involved)."""
    ai_decision: AIDecision | None = None
    """The job's AI decision to store with the outcome (starts as the claimed one)."""
    quiet: bool = False
    """A run that reused the decision and saw no change: no summary message (bounded
    history)."""
    sessions: list[AISession] = field(default_factory=list)
    """The run's model exchanges, stored with the outcome."""
    calls_avoided: dict[str, int] = field(default_factory=dict)
    """AI phases not sent to the model, by why (`reused`, `budget`): for the metrics."""

    @property
    def job_id(self) -> str:
        return self.claimed.lease.job_id

    @property
    def run_id(self) -> str:
        return self.claimed.lease.run_id

    def add_cost(self, decision: PlanDecision | ScheduleDecision) -> None:
        self.usage = self.usage + decision.usage
        self.ai_calls += decision.ai_calls
        self.sessions += decision.sessions
        if decision.fallback_reason:
            self.fallbacks += 1
            if decision.fallback_reason.startswith("budget"):
                self.avoid("budget")

    def avoid(self, reason: str) -> None:
        self.calls_avoided[reason] = self.calls_avoided.get(reason, 0) + 1

    def stored_sessions(self) -> tuple[AISession, ...]:
        """The sessions, each stamped with why the model was asked."""
        return tuple(replace(s, trigger=self.ai_trigger) for s in self.sessions)

    @property
    def cost_usd(self) -> float:
        if not self.sessions:  # a rules run: no model, no cost
            return 0.0
        return round(sum(s.cost_usd for s in self.sessions), 9)
