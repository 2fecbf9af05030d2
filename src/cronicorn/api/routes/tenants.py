"""`/api/admin/tenants`: a tenant's model spend and monthly budget (scope `admin`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from cronicorn.api.deps import AdminKey, Svc
from cronicorn.api.errors import error_responses
from cronicorn.service.ai_schemas import BudgetSet, TenantCost

router = APIRouter(
    prefix="/api/admin/tenants",
    tags=["admin"],
    responses=error_responses(401, 403, 404, 413, 422),
)
TenantRef = Annotated[
    str, Path(min_length=1, max_length=200, description="The tenant's id or name.")
]


@router.get("/{tenant}/cost", response_model=TenantCost)
async def get_tenant_cost(tenant: TenantRef, _: AdminKey, svc: Svc) -> TenantCost:
    return await svc.ai.tenant_cost_by_ref(tenant)


@router.put("/{tenant}/budget", response_model=TenantCost)
async def set_tenant_budget(
    tenant: TenantRef, body: BudgetSet, _: AdminKey, svc: Svc
) -> TenantCost:
    """Set the tenant's monthly budget in US dollars (null: the server's default). Once the
    month's spend reaches it, the tenant's jobs use the rules planner until the month ends."""
    return await svc.ai.set_budget(tenant, body.monthly_budget_usd)
