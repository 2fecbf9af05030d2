"""Dashboard sessions: sign in with an API key, resolve the session cookie, sign out.

The cookie carries a random token; only its SHA-256 is stored, so a database reader cannot
ride a session. A session is tied to the key it was opened with: every lookup joins the key
and refuses it once the key is revoked. Sessions end after `idle` without a request and
after `lifetime` in any case. Throttling (failed sign-ins per client address, the key's
request budget) is not done here: the dashboard's routes use the API's `Throttle`
(`cronicorn.service.throttle`), so both surfaces share one budget.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.models import Scope
from cronicorn.service.keys import Keys, Principal
from cronicorn.store.tables import ApiKey, WebSession, utcnow

IDLE_TIMEOUT = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(seconds=60)
"""`last_seen_at` is written at most this often: polled fragments would otherwise write on
every request."""
DASHBOARD_SCOPES = frozenset({Scope.USER, Scope.ADMIN})


class SignInRefused(Exception):
    """The key is unknown or revoked: a failed authentication (the caller counts it)."""


class ScopeRefused(SignInRefused):
    """A valid key of a scope that cannot use the dashboard (`engine`). Like a 403 on the
    API, this is not a failed authentication."""


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A live session: who it acts as and the CSRF token its forms must carry."""

    principal: Principal
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebSessions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keys: Keys,
        clock: Callable[[], datetime] = utcnow,
        idle: timedelta = IDLE_TIMEOUT,
        lifetime: timedelta = LIFETIME,
    ) -> None:
        self._sessions = sessions
        self._keys = keys
        self._now = clock
        self.idle = idle
        self.lifetime = lifetime

    async def sign_in(self, key: str) -> str:
        """A new session token for a valid user/admin key (the cookie value)."""
        principal = await self._keys.authenticate(key.strip())
        if principal is None:
            raise SignInRefused("unknown or revoked API key")
        if principal.scope not in DASHBOARD_SCOPES:
            raise ScopeRefused("an engine key cannot sign in: use a user or admin key")
        token = secrets.token_urlsafe(32)
        now = self._now()
        async with self._sessions() as session, session.begin():
            # Sessions nobody came back to would otherwise stay forever: sweep on sign-in.
            await session.execute(
                sa.delete(WebSession).where(
                    sa.or_(
                        WebSession.last_seen_at <= now - self.idle,
                        WebSession.created_at <= now - self.lifetime,
                    )
                )
            )
            session.add(
                WebSession(
                    id=_hash(token),
                    key_id=principal.key_id,
                    tenant_id=principal.tenant_id,
                    scope=principal.scope.value,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return token

    async def resolve(self, token: str) -> OpenSession | None:
        """The session for a cookie value; None when unknown, expired or its key revoked."""
        if not token or len(token) > 100:
            return None
        now = self._now()
        async with self._sessions() as session, session.begin():
            row = (
                await session.execute(
                    sa.select(WebSession, ApiKey.revoked_at)
                    .join(ApiKey, ApiKey.id == WebSession.key_id)
                    .where(WebSession.id == _hash(token))
                )
            ).first()
            if row is None:
                return None
            web, revoked_at = row
            if (
                revoked_at is not None
                or web.last_seen_at + self.idle <= now
                or web.created_at + self.lifetime <= now
            ):
                await session.delete(web)
                return None
            if now - web.last_seen_at >= TOUCH_EVERY:
                web.last_seen_at = now
            principal = Principal(
                tenant_id=web.tenant_id, scope=Scope(web.scope), key_id=web.key_id
            )
            return OpenSession(principal=principal, csrf_token=web.csrf_token)

    async def sign_out(self, token: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(sa.delete(WebSession).where(WebSession.id == _hash(token)))
