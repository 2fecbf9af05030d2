"""`cronicorn keys …`: API keys, created directly in the database (bootstraps the first
admin key; afterwards `POST /api/admin/keys` works too)."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer

from cronicorn.cli.common import EXIT_USAGE, exit_on_config_error, fail
from cronicorn.settings import Settings

app = typer.Typer(help="API key management.", no_args_is_help=True)


class ScopeChoice(StrEnum):
    user = "user"
    engine = "engine"
    admin = "admin"


@app.command("create")
def create(
    tenant: str = typer.Option(..., help="Tenant name (created if new)."),
    scope: ScopeChoice = typer.Option(ScopeChoice.user, help="user, engine or admin."),
) -> None:
    """Create an API key and print only the key (it is stored hashed: save it now)."""
    if not 1 <= len(tenant) <= 200:
        fail("--tenant must be 1-200 characters", EXIT_USAGE)
    with exit_on_config_error():
        settings = Settings.from_env()
        key = asyncio.run(create_key(settings, tenant, scope.value))
    typer.echo(key)


async def create_key(settings: Settings, tenant: str, scope: str) -> str:
    """A new key for `tenant` (created if new) on the settings' database, migrated first;
    returns the key itself (only its hash is stored)."""
    from cronicorn.service.keys import Keys
    from cronicorn.store.db import create_engine, session_factory
    from cronicorn.store.migrate import upgrade_database_async

    await upgrade_database_async(settings.database_url)
    db = create_engine(settings.database_url)
    try:
        created = await Keys(session_factory(db)).create(tenant, scope)
    finally:
        await db.dispose()
    return created.key
