"""`/api/admin/keys`: API key management (scope `admin`)."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import AdminKey, Svc
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import After, AscendingLimit
from cronicorn.service.schemas import KeyCreate, KeyCreated, KeyOut

router = APIRouter(
    prefix="/api/admin/keys", tags=["admin"], responses=error_responses(401, 403, 413, 422)
)


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyCreate, _: AdminKey, svc: Svc) -> KeyCreated:
    """Create a key (and its tenant if new). The key is in this response only."""
    return await svc.keys.create(body.tenant, body.scope)


@router.get("", response_model=list[KeyOut])
async def list_keys(
    _: AdminKey, svc: Svc, limit: AscendingLimit = 100, after: After = None
) -> list[KeyOut]:
    """Creation order; pass the last key's id as `after` for the next page."""
    return await svc.keys.list(limit, after)


@router.delete("/{key_id}", response_model=KeyOut, responses=error_responses(404))
async def revoke_key(key_id: str, _: AdminKey, svc: Svc) -> KeyOut:
    """Revoke a key; it stops working at once."""
    return await svc.keys.revoke(key_id)
