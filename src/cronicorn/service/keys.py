"""Tenants and API keys: create (shown once), authenticate (by hash), list, revoke."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.models import Scope
from cronicorn.errors import NotFoundError
from cronicorn.service.errors import FieldErrors
from cronicorn.service.schemas import KeyCreated, KeyOut
from cronicorn.service.validation import plausible_id
from cronicorn.store.tables import ApiKey, Tenant, utcnow

KEY_PREFIX = "ck_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's tenant and scope."""

    tenant_id: str
    scope: Scope
    key_id: str

    @property
    def sees_all_tenants(self) -> bool:
        return self.scope is Scope.ADMIN


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class Keys:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, tenant: str, scope: Scope | str) -> KeyCreated:
        """Create a key (and the tenant, if new). The plaintext is returned only here."""
        scope = Scope(scope)
        key = new_key()
        async with self._sessions() as session, session.begin():
            tenant_row = await _tenant_by_name(session, tenant)
            row = ApiKey(
                id=str(uuid.uuid4()),
                tenant_id=tenant_row.id,
                scope=scope.value,
                key_hash=hash_key(key),
                prefix=key[: len(KEY_PREFIX) + 6],
                created_at=utcnow(),
            )
            session.add(row)
        return KeyCreated(**_key_out(row, tenant_row.name).model_dump(), key=key)

    async def tenant_admin(self, tenant: str, key_id: str) -> Principal:
        """An admin principal of `tenant` (created if new), for an in-process caller that
        holds no key (the CLI on its own database); `key_id` names that caller."""
        async with self._sessions() as session, session.begin():
            row = await _tenant_by_name(session, tenant)
        return Principal(tenant_id=row.id, scope=Scope.ADMIN, key_id=key_id)

    async def authenticate(self, key: str) -> Principal | None:
        """The principal for a presented key; None if unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        async with self._sessions() as session:
            row = await session.scalar(
                sa.select(ApiKey).where(
                    ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
                )
            )
        if row is None or row.scope not in Scope.__members__.values():
            return None
        return Principal(tenant_id=row.tenant_id, scope=Scope(row.scope), key_id=row.id)

    async def list(self, limit: int = 100, after: str | None = None) -> list[KeyOut]:
        """Creation order; pass the last id you saw as `after` for the next page."""
        async with self._sessions() as session:
            stmt = sa.select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
            if after is not None:
                ref = await session.get(ApiKey, after) if plausible_id(after) else None
                if ref is None:
                    raise FieldErrors([("after", f"unknown key id: {after}")], "query")
                stmt = stmt.where(
                    sa.or_(
                        ApiKey.created_at > ref.created_at,
                        sa.and_(ApiKey.created_at == ref.created_at, ApiKey.id > ref.id),
                    )
                )
            stmt = stmt.order_by(ApiKey.created_at, ApiKey.id).limit(max(1, limit))
            return [_key_out(key, name) for key, name in await session.execute(stmt)]

    async def revoke(self, key_id: str) -> KeyOut:
        if not plausible_id(key_id):
            raise NotFoundError("key", key_id)
        async with self._sessions() as session, session.begin():
            row = await session.get(ApiKey, key_id)
            if row is None:
                raise NotFoundError("key", key_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            tenant = await session.get(Tenant, row.tenant_id)
            return _key_out(row, tenant.name if tenant else "")


async def _tenant_by_name(session: AsyncSession, name: str) -> Tenant:
    row = await session.scalar(sa.select(Tenant).where(Tenant.name == name))
    if row is None:
        row = Tenant(id=str(uuid.uuid4()), name=name, created_at=utcnow())
        session.add(row)
        await session.flush()
    return row


def _key_out(row: ApiKey, tenant_name: str) -> KeyOut:
    return KeyOut(
        id=row.id,
        tenant_id=row.tenant_id,
        tenant=tenant_name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
