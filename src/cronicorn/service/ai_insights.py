"""Inspecting and pricing the AI: a run's stored model exchanges, a job's decisions over time,
what a tenant spent and its monthly budget (docs/ai.md).

Decisions are read from the runs themselves (a run in which the model was asked), so they
follow run retention like everything else about a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.models import PlanSource
from cronicorn.errors import NotFoundError
from cronicorn.service.ai_schemas import (
    AISessionOut,
    AITokens,
    DecisionOut,
    TenantCost,
)
from cronicorn.service.common import MAX_PAGE, load_job, visible
from cronicorn.service.errors import FieldErrors
from cronicorn.service.keys import Principal
from cronicorn.service.validation import plausible_id
from cronicorn.store.tables import AISessionRow, Job, Run, Tenant, utcnow

MODEL_MADE = frozenset({"success", "repaired", "salvaged"})


class AIInsights:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
        default_budget_usd: float | None = None,
    ) -> None:
        self._sessions = sessions
        self._now = clock
        self.default_budget_usd = default_budget_usd

    # -- AI sessions ------------------------------------------------------------------------

    async def run_sessions(
        self, principal: Principal, run_id: str, limit: int = 50, before: int | None = None
    ) -> list[AISessionOut]:
        """The run's model exchanges in the order they happened; `before`: a session id
        (the last of the previous page)."""
        if not plausible_id(run_id):
            raise NotFoundError("run", run_id)
        async with self._sessions() as session:
            owner = visible(
                principal, sa.select(Run.id).join(Job, Job.id == Run.job_id).where(Run.id == run_id)
            )
            if await session.scalar(owner) is None:
                raise NotFoundError("run", run_id)
            stmt = sa.select(AISessionRow).where(AISessionRow.run_id == run_id)
            if before is not None:
                stmt = stmt.where(AISessionRow.id > before)
            stmt = stmt.order_by(AISessionRow.id).limit(min(max(limit, 1), MAX_PAGE))
            return [session_out(row) for row in await session.scalars(stmt)]

    # -- decisions --------------------------------------------------------------------------

    async def decisions(
        self, principal: Principal, job_id: str, limit: int = 50, before: str | None = None
    ) -> list[DecisionOut]:
        """Runs that asked the model, newest first, each with how many later runs reused
        what it decided (until the next such run); `before`: a run id."""
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            stmt = _decision_runs(job_id)
            if before is not None:
                ref = await session.get(Run, before)
                if ref is None or ref.job_id != job_id:
                    raise FieldErrors(
                        [("before", f"unknown run id for this job: {before}")], "query"
                    )
                stmt = stmt.where(
                    sa.or_(
                        Run.started_at < ref.started_at,
                        sa.and_(Run.started_at == ref.started_at, Run.id < ref.id),
                    )
                )
            stmt = stmt.order_by(Run.started_at.desc(), Run.id.desc()).limit(
                min(max(limit, 1), MAX_PAGE)
            )
            rows: list[tuple[Run, int]] = [
                (row[0], int(row[1] or 0)) for row in (await session.execute(stmt)).all()
            ]
            outcomes = await _session_outcomes(session, [run.id for run, _ in rows])
        return [_decision_out(run, reused, outcomes.get(run.id, [])) for run, reused in rows]

    # -- cost and budgets -------------------------------------------------------------------

    async def tenant_cost(self, tenant_id: str) -> TenantCost:
        async with self._sessions() as session:
            tenant = await session.get(Tenant, tenant_id)
            if tenant is None:
                raise NotFoundError("tenant", tenant_id)
            return self._cost_out(tenant)

    async def tenant_cost_by_ref(self, ref: str) -> TenantCost:
        async with self._sessions() as session:
            return self._cost_out(await _tenant(session, ref))

    async def set_budget(self, ref: str, budget_usd: float | None) -> TenantCost:
        async with self._sessions() as session, session.begin():
            tenant = await _tenant(session, ref)
            tenant.monthly_budget_usd = budget_usd
        return self._cost_out(tenant)

    def _cost_out(self, tenant: Tenant) -> TenantCost:
        month = self._now().date().isoformat()[:7]
        spent = tenant.cost_usd_month if tenant.cost_month == month else 0.0
        budget = tenant.monthly_budget_usd
        source = "tenant"
        if budget is None:
            budget = self.default_budget_usd
            source = "default" if budget is not None else "none"
        return TenantCost(
            tenant_id=tenant.id,
            tenant=tenant.name,
            month=month,
            month_usd=spent,
            total_usd=tenant.cost_usd_total,
            monthly_budget_usd=budget,
            budget_source=source,
            budget_exhausted=budget is not None and spent >= budget,
        )


def _decision_runs(job_id: str) -> sa.Select[Any]:
    """Runs of the job that called the model, each with the count of `ai_reused` runs
    between it and the next such run (correlated subqueries on `ix_runs_job_started`)."""
    later = sa.orm.aliased(Run)
    reused = sa.orm.aliased(Run)
    next_decision = (
        sa.select(sa.func.min(later.started_at))
        .where(later.job_id == Run.job_id, later.ai_calls > 0, later.started_at > Run.started_at)
        .correlate(Run)
        .scalar_subquery()
    )
    reused_count = (
        sa.select(sa.func.count())
        .select_from(reused)
        .where(
            reused.job_id == Run.job_id,
            reused.plan_source == PlanSource.AI_REUSED.value,
            reused.ai_calls == 0,
            reused.started_at > Run.started_at,
            sa.or_(next_decision.is_(None), reused.started_at < next_decision),
        )
        .correlate(Run)
        .scalar_subquery()
    )
    return sa.select(Run, reused_count).where(Run.job_id == job_id, Run.ai_calls > 0)


async def _session_outcomes(session: AsyncSession, run_ids: Sequence[str]) -> dict[str, list[str]]:
    if not run_ids:
        return {}
    rows = await session.execute(
        sa.select(AISessionRow.run_id, AISessionRow.outcome).where(AISessionRow.run_id.in_(run_ids))
    )
    out: dict[str, list[str]] = {}
    for run_id, outcome in rows:
        out.setdefault(run_id, []).append(outcome)
    return out


def _decision_out(run: Run, reused: int, outcomes: list[str]) -> DecisionOut:
    schedule: dict[str, Any] = run.schedule or {}
    next_run = schedule.get("next_run_at")
    return DecisionOut(
        run_id=run.id,
        decided_at=run.finished_at or run.started_at,
        trigger=run.ai_trigger,
        plan_source=run.plan_source,
        schedule_source=schedule.get("source"),
        next_run_at=datetime.fromisoformat(next_run) if next_run else None,
        reasoning=schedule.get("reasoning"),
        confidence=schedule.get("confidence"),
        made_by_model=bool(outcomes) and all(o in MODEL_MADE for o in outcomes),
        reused_runs=int(reused or 0),
        ai_calls=run.ai_calls,
        tokens=AITokens(
            input=run.input_tokens,
            output=run.output_tokens,
            reasoning=run.reasoning_tokens,
            cached=run.cached_input_tokens,
        ),
        cost_usd=run.cost_usd,
    )


def session_out(row: AISessionRow) -> AISessionOut:
    return AISessionOut(
        id=row.id,
        run_id=row.run_id,
        job_id=row.job_id,
        position=row.position,
        phase=row.phase,
        trigger=row.trigger,
        model=row.model,
        started_at=row.started_at,
        latency_ms=row.latency_ms,
        outcome=row.outcome,
        failure=row.failure,
        tokens=AITokens(
            input=row.input_tokens,
            output=row.output_tokens,
            reasoning=row.reasoning_tokens,
            cached=row.cached_input_tokens,
        ),
        cost_usd=row.cost_usd,
        repair_attempts=row.repair_attempts,
        messages=list(row.messages or []),
        attempts=list(row.attempts or []),
        decision=row.decision,
        truncated=row.truncated,
    )


async def _tenant(session: AsyncSession, ref: str) -> Tenant:
    """A tenant by id or by name."""
    tenant = await session.get(Tenant, ref) if plausible_id(ref) else None
    if tenant is None:
        tenant = await session.scalar(sa.select(Tenant).where(Tenant.name == ref))
    if tenant is None:
        raise NotFoundError("tenant", ref)
    return tenant
