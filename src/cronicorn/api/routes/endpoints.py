"""Endpoints: `/api/jobs/{id}/endpoints` and `/api/endpoints/{id}`."""

from __future__ import annotations

from fastapi import APIRouter, Response

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import After, AscendingLimit
from cronicorn.service.schemas import EndpointCreate, EndpointOut, EndpointUpdate

router = APIRouter(tags=["endpoints"], responses=error_responses(401, 403, 404, 413, 422))
CONFLICT = error_responses(409)


@router.post(
    "/api/jobs/{job_id}/endpoints", status_code=201, response_model=EndpointOut, responses=CONFLICT
)
async def create_endpoint(
    job_id: str, body: EndpointCreate, principal: UserKey, svc: Svc
) -> EndpointOut:
    """Add an endpoint; `headers` values and `bearer_token` are stored encrypted."""
    return await svc.endpoints.create(principal, job_id, body)


@router.get("/api/jobs/{job_id}/endpoints", response_model=list[EndpointOut])
async def list_endpoints(
    job_id: str, principal: UserKey, svc: Svc, limit: AscendingLimit = 100, after: After = None
) -> list[EndpointOut]:
    """Creation order; pass the last endpoint's id as `after` for the next page."""
    return await svc.endpoints.list_for_job(principal, job_id, limit, after)


@router.get("/api/endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(endpoint_id: str, principal: UserKey, svc: Svc) -> EndpointOut:
    return await svc.endpoints.get(principal, endpoint_id)


@router.patch("/api/endpoints/{endpoint_id}", response_model=EndpointOut, responses=CONFLICT)
async def update_endpoint(
    endpoint_id: str, body: EndpointUpdate, principal: UserKey, svc: Svc
) -> EndpointOut:
    """Change the given fields. Secrets given as `"***"` keep the stored value."""
    return await svc.endpoints.update(principal, endpoint_id, body)


@router.delete("/api/endpoints/{endpoint_id}", status_code=204, responses=CONFLICT)
async def delete_endpoint(endpoint_id: str, principal: UserKey, svc: Svc) -> Response:
    await svc.endpoints.delete(principal, endpoint_id)
    return Response(status_code=204)
