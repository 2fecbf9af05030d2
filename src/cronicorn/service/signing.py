"""The tenant's outbound signing key: show (the secret once), rotate, revoke.

The secret is stored encrypted (`cronicorn.store.secrets`) and reaches the engine with each
claimed job (`JobSnapshot.signing_secret`), so a rotation or revocation applies from the next
claimed run on: the old secret stops verifying at once for every call made after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.service.keys import Principal
from cronicorn.service.schemas import SigningKeyOut
from cronicorn.store.locks import lock_row
from cronicorn.store.secrets import SecretBox
from cronicorn.store.signing_keys import new_key_row
from cronicorn.store.tables import SigningKey, Tenant, signing_keys_t, utcnow


class SigningKeys:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._now = clock

    async def show(self, principal: Principal) -> SigningKeyOut:
        """The key's metadata; the secret too if it was never shown (created here on first
        use, or by the first claim of one of the tenant's jobs)."""
        async with self._sessions() as session, session.begin():
            await lock_row(session, Tenant.id, principal.tenant_id)
            row = await self._row(session, principal.tenant_id)
            if row is None:
                await self._upsert(
                    session, new_key_row(principal.tenant_id, self._box, self._now())
                )
                row = await self._row(session, principal.tenant_id)
                assert row is not None
            if row.secret is None or row.revealed_at is not None:
                return _out(row)
            row.revealed_at = self._now()
            return _out(row, self._box.decrypt(row.secret))

    async def rotate(self, principal: Principal) -> SigningKeyOut:
        """A new secret (returned here, once); the previous one is gone."""
        now = self._now()
        values = new_key_row(principal.tenant_id, self._box, now) | {"revealed_at": now}
        async with self._sessions() as session, session.begin():
            await lock_row(session, Tenant.id, principal.tenant_id)
            await self._upsert(session, values)
            row = await self._row(session, principal.tenant_id)
            assert row is not None
            assert row.secret is not None
            return _out(row, self._box.decrypt(row.secret))

    async def revoke(self, principal: Principal) -> SigningKeyOut:
        """Delete the secret: calls go out unsigned until `rotate` creates a new key."""
        now = self._now()
        async with self._sessions() as session, session.begin():
            await lock_row(session, Tenant.id, principal.tenant_id)
            row = await self._row(session, principal.tenant_id)
            if row is None:  # never had one: remember the choice, so no claim creates one
                values = new_key_row(principal.tenant_id, self._box, now)
                await self._upsert(session, values | {"secret": None, "revoked_at": now})
                row = await self._row(session, principal.tenant_id)
                assert row is not None
            elif row.secret is not None:
                row.secret = None
                row.revoked_at = now
            return _out(row)

    @staticmethod
    async def _row(session: AsyncSession, tenant_id: str) -> SigningKey | None:
        stmt = sa.select(SigningKey).where(SigningKey.tenant_id == tenant_id)
        return await session.scalar(stmt.execution_options(populate_existing=True))

    @staticmethod
    async def _upsert(session: AsyncSession, values: dict[str, Any]) -> None:
        """Insert or replace the tenant's row (a claim may have created one meanwhile)."""
        dialect = session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(signing_keys_t).values(values)
        changed = {k: stmt.excluded[k] for k in values if k != "tenant_id"}
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["tenant_id"], set_=changed)
        )


def _out(row: SigningKey, secret: str | None = None) -> SigningKeyOut:
    return SigningKeyOut(
        key_id=row.key_id,
        status="revoked" if row.secret is None else "active",
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        secret=secret,
    )
