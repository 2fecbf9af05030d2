"""Tenants' outbound signing secrets at rest (encrypted like every other secret).

A tenant's key is created on first use: by the tenant (`GET`/`POST /api/signing-key`) or,
for a tenant that never asked, by the first claim of one of its jobs, so every endpoint
call is signed. A revoked key (row kept, `secret` NULL) is not re-created by a claim: that
tenant's calls go out unsigned until it creates a new key.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.errors import ConfigError
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import signing_keys_t, utcnow

SECRET_PREFIX = "cksig_"

OF_TENANTS = sa.select(
    signing_keys_t.c.tenant_id, signing_keys_t.c.secret, signing_keys_t.c.revoked_at
).where(signing_keys_t.c.tenant_id.in_(sa.bindparam("tenant_ids", expanding=True)))


def new_signing_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_row(tenant_id: str, box: SecretBox, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "key_id": str(uuid.uuid4()),
        "secret": box.encrypt(new_signing_secret()),
        "created_at": now,
        "revealed_at": None,
        "revoked_at": None,
    }


async def signing_ciphertexts(
    conn: AsyncConnection, tenant_ids: Sequence[str], box: SecretBox
) -> dict[str, str | None]:
    """The encrypted secret per tenant (None when revoked); tenants without a key get one
    (in a transaction of their own) first. Decrypt with `decrypt_signing_secret`."""
    wanted = sorted(set(tenant_ids))
    if not wanted:
        return {}
    rows = (await conn.execute(OF_TENANTS, {"tenant_ids": wanted})).all()
    found = {row.tenant_id: row.secret for row in rows}
    missing = [t for t in wanted if t not in found]
    if missing:
        found.update(await _create(conn, missing, box))
    return found


async def _create(conn: AsyncConnection, tenant_ids: list[str], box: SecretBox) -> dict[str, Any]:
    """Insert keys for `tenant_ids`, keeping any a concurrent claim created first."""
    now = utcnow()
    rows = [new_key_row(tenant, box, now) for tenant in tenant_ids]
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    async with conn.engine.begin() as writer:
        await writer.execute(
            insert(signing_keys_t).on_conflict_do_nothing(index_elements=["tenant_id"]), rows
        )
        stored = (await writer.execute(OF_TENANTS, {"tenant_ids": tenant_ids})).all()
    return {row.tenant_id: row.secret for row in stored}


def decrypt_signing_secret(box: SecretBox, ciphertext: str | None) -> str | None:
    """Raises ConfigError (naming the signing key) if it cannot be decrypted."""
    if ciphertext is None:
        return None
    try:
        return box.decrypt(ciphertext)
    except ConfigError as exc:
        raise ConfigError(f"the tenant's signing key: {exc}") from exc
