"""Inspecting the AI: a run's stored model exchanges, a job's decisions, the tenant's cost."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import Before, Limit
from cronicorn.service.ai_schemas import AISessionOut, DecisionOut, TenantCost

router = APIRouter(tags=["ai"], responses=error_responses(401, 403, 404, 422))

SessionCursor = Annotated[
    int | None,
    Query(ge=0, description="Keyset cursor: the id of the last session of the previous page."),
]


@router.get("/api/runs/{run_id}/ai", response_model=list[AISessionOut])
async def list_run_ai_sessions(
    run_id: str, principal: UserKey, svc: Svc, limit: Limit = 50, after: SessionCursor = None
) -> list[AISessionOut]:
    """The run's model exchanges in order (plan, schedule): the messages sent (secrets
    masked), every reply with its validation errors and repairs, the parsed decision,
    tokens, cost, latency and outcome. Runs that reused a decision have none."""
    return await svc.ai.run_sessions(principal, run_id, limit, after)


@router.get("/api/jobs/{job_id}/decisions", response_model=list[DecisionOut])
async def list_decisions(
    job_id: str, principal: UserKey, svc: Svc, limit: Limit = 50, before: Before = None
) -> list[DecisionOut]:
    """Runs that asked the model, newest first, with the reasoning, confidence and next run
    decided, and how many later runs reused the decision; `before`: a run id."""
    return await svc.ai.decisions(principal, job_id, limit, before)


@router.get("/api/cost", response_model=TenantCost)
async def get_cost(principal: UserKey, svc: Svc) -> TenantCost:
    """What the caller's tenant spent on the model this month and in total, and its budget
    (when spent, the tenant's jobs use the rules planner until the month ends)."""
    return await svc.ai.tenant_cost(principal.tenant_id)
