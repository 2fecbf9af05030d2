"""Request dependencies: the app's services and bearer-key authentication with scopes.

Scopes: `user` (its own tenant's jobs), `engine` (scheduler routes, every tenant), `admin`
(everything: user routes across all tenants, scheduler routes, key management, force-unlock).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cronicorn.domain.models import Scope
from cronicorn.service import Principal, Services
from cronicorn.service.keys import hash_key
from cronicorn.service.throttle import Throttle

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_state(request: Request) -> Any:
    return request.app.state


KEY_CACHE_TTL_S = 5.0
"""How long a valid key is trusted without asking the database again. Revoking through this
API process takes effect at once (the cache is cleared); a revocation made elsewhere (the
CLI, another API process) takes effect within this time."""
KEY_CACHE_MAX = 1024


class KeyCache:
    """Key hash → principal for `KEY_CACHE_TTL_S`: the engine's scheduler calls (several
    per job) would otherwise each pay a database lookup. Only valid keys are cached."""

    def __init__(self, ttl_s: float = KEY_CACHE_TTL_S, max_entries: int = KEY_CACHE_MAX) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key_hash]
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self._ttl_s, principal)

    def clear(self) -> None:
        self._entries.clear()


def key_cache(request: Request) -> KeyCache:
    cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
    if cache is None:
        cache = request.app.state.key_cache = KeyCache()
    return cache


def get_throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


def client_address(request: Request) -> str:
    """The peer address (uvicorn applies trusted `X-Forwarded-For` to it)."""
    return request.client.host if request.client else "unknown"


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The key's principal. A key not seen recently is looked up only while its client
    address is under the failed-authentication limit (429 otherwise); every request then
    spends one unit of the key's budget (429 once spent)."""
    if credentials is None:
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    throttle = get_throttle(request)
    cache = key_cache(request)
    if request.method != "GET" and request.url.path.startswith("/api/admin/keys"):
        cache.clear()  # a key may be revoked by this request: nothing stale afterwards
    key_hash = hash_key(credentials.credentials)
    principal = cache.get(key_hash)
    if principal is None:
        client = client_address(request)
        await throttle.check_failed_auth(client)
        principal = await get_services(request).keys.authenticate(credentials.credentials)
        if principal is None:
            await throttle.record_failed_auth(client)
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
        cache.put(key_hash, principal)
    await throttle.spend(principal)
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
