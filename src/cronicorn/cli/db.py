"""`cronicorn db …`: schema management."""

from __future__ import annotations

import typer

from cronicorn.cli.common import exit_on_config_error

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target Alembic revision.")) -> None:
    """Create or migrate the schema of CRONICORN_DATABASE_URL to the latest revision."""
    from cronicorn.settings import Settings
    from cronicorn.store.migrate import upgrade_database

    with exit_on_config_error():
        settings = Settings.from_env()
        upgrade_database(settings.database_url, revision)
    typer.echo(f"database upgraded to {revision}", err=True)
