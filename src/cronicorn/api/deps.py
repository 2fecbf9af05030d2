"""Request dependencies: the app's services and bearer-key authentication with scopes.

Scopes: `user` (its own tenant's jobs), `engine` (scheduler routes, every tenant), `admin`
(everything: user routes across all tenants, scheduler routes, key management, force-unlock).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cronicorn.domain.models import Scope
from cronicorn.service import Principal, Services

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_state(request: Request) -> Any:
    return request.app.state


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    principal = await get_services(request).keys.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(*scopes: Scope) -> Callable[..., Awaitable[Principal]]:
    allowed = frozenset(scopes)

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.scope not in allowed:
            names = ", ".join(sorted(s.value for s in allowed))
            raise HTTPException(403, f"this route needs a key with scope {names}")
        return principal

    return dependency


UserKey = Annotated[Principal, Depends(require(Scope.USER, Scope.ADMIN))]
EngineKey = Annotated[Principal, Depends(require(Scope.ENGINE, Scope.ADMIN))]
AdminKey = Annotated[Principal, Depends(require(Scope.ADMIN))]
Svc = Annotated[Services, Depends(get_services)]
