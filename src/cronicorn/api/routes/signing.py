"""`/api/signing-key`: the tenant's outbound request-signing key (show once, rotate, revoke)."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.service.schemas import SigningKeyOut

router = APIRouter(prefix="/api/signing-key", tags=["signing"], responses=error_responses(401, 403))


@router.get("", response_model=SigningKeyOut)
async def show_signing_key(principal: UserKey, svc: Svc) -> SigningKeyOut:
    """The key's metadata. The secret is included only the first time a key is shown
    (a key is created on first use); afterwards rotate to get a new one."""
    return await svc.signing.show(principal)


@router.post("", status_code=201, response_model=SigningKeyOut)
async def rotate_signing_key(principal: UserKey, svc: Svc) -> SigningKeyOut:
    """Create a new secret (shown in this response only). The old one stops verifying for
    every call made after this: runs claimed from now on are signed with the new secret."""
    return await svc.signing.rotate(principal)


@router.delete("", response_model=SigningKeyOut)
async def revoke_signing_key(principal: UserKey, svc: Svc) -> SigningKeyOut:
    """Delete the secret: calls go out unsigned until a new key is created with POST."""
    return await svc.signing.revoke(principal)
