"""Shapes of the AI steering and inspection resources: hints, cost and budgets, stored AI
sessions and the job's decisions over time (docs/ai.md, docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from cronicorn.service.validation import IntervalMs, Text, UtcDatetime

DAY_MS = 86_400_000
HintTtlMs = Annotated[int, Strict(), Field(ge=1_000, le=90 * DAY_MS)]
DEFAULT_HINT_TTL_MS = 3_600_000
Money = Annotated[float, Field(ge=0.0, le=1e9, allow_inf_nan=False)]


class HintCreate(BaseModel):
    """Body of `POST /api/jobs/{id}/hints`: exactly one of `interval_ms` and `next_run_at`."""

    model_config = ConfigDict(extra="forbid")
    interval_ms: IntervalMs | None = Field(
        None, description="Run every this many ms while the hint lives (inside min/max)."
    )
    next_run_at: UtcDatetime | None = Field(
        None, description="Run once at this time (must be in the future; clamped to min/max)."
    )
    ttl_ms: HintTtlMs = Field(
        DEFAULT_HINT_TTL_MS,
        description="How long the hint lives (default 1 h, at most 90 days); then the AI "
        "and the baseline decide again.",
    )
    reason: Annotated[Text, Field(max_length=500)] = Field(
        "", description="Why (shown to the model and in the job)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> HintCreate:
        if (self.interval_ms is None) == (self.next_run_at is None):
            raise ValueError("give exactly one of interval_ms and next_run_at")
        return self


class HintOut(BaseModel):
    interval_ms: int | None
    next_run_at: datetime | None
    expires_at: datetime
    reason: str
    set_at: datetime | None


class JobCost(BaseModel):
    """What the job's model calls cost, in US dollars (kept on the job: survives retention)."""

    today_usd: float = Field(description="Today (UTC).")
    month_usd: float = Field(description="This calendar month (UTC).")
    total_usd: float


class TenantCost(BaseModel):
    tenant_id: str
    tenant: str
    month: str = Field(description="The calendar month (UTC) of `month_usd`, YYYY-MM.")
    month_usd: float
    total_usd: float
    monthly_budget_usd: float | None = Field(
        description="The budget in force: the tenant's own, else the server's default "
        "(`CRONICORN_TENANT_MONTHLY_BUDGET_USD`); null: no budget."
    )
    budget_source: str = Field(description="`tenant`, `default` or `none`.")
    budget_exhausted: bool = Field(
        description="True: the tenant's jobs use the rules planner until the month ends."
    )


class BudgetSet(BaseModel):
    """Body of `PUT /api/admin/tenants/{tenant}/budget`."""

    model_config = ConfigDict(extra="forbid")
    monthly_budget_usd: Money | None = Field(
        description="US dollars per calendar month (UTC); null: the server's default."
    )


class AITokens(BaseModel):
    input: int
    output: int
    reasoning: int
    cached: int


class AISessionOut(BaseModel):
    """One model exchange: the redacted prompt, every reply (repairs included), the parsed
    decision, tokens, cost and latency."""

    id: int
    run_id: str
    job_id: str
    position: int
    phase: str = Field(description="`plan` or `schedule`.")
    trigger: str | None = Field(description="The run's `ai_trigger`.")
    model: str
    started_at: datetime
    latency_ms: float
    outcome: str = Field(
        description="success, repaired, salvaged, or the failure: transport, refusal, "
        "truncated, schema_invalid, semantic_invalid."
    )
    failure: str | None
    tokens: AITokens
    cost_usd: float
    repair_attempts: int
    messages: list[dict[str, str]] = Field(
        description="The messages sent (secrets masked), oldest first."
    )
    attempts: list[dict[str, Any]] = Field(
        description="Each request: outcome, kind, raw_reply, errors, tokens, latency_ms."
    )
    decision: Any = Field(None, description="The parsed, validated plan or schedule.")
    truncated: bool = Field(description="Some text was cut to the size cap.")


class DecisionOut(BaseModel):
    """A run in which the model was asked, with what it decided."""

    run_id: str
    decided_at: datetime
    trigger: str | None
    plan_source: str | None
    schedule_source: str | None
    next_run_at: datetime | None
    reasoning: str | None
    confidence: float | None
    made_by_model: bool = Field(
        description="False when the model failed and the rules planner decided instead."
    )
    reused_runs: int = Field(
        description="Runs after it (until the next decision) that reused it without asking."
    )
    ai_calls: int
    tokens: AITokens
    cost_usd: float
