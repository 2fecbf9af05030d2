"""`cronicorn serve`: migrate the database if needed, then run the API with uvicorn.

A restart must be short (workers retry their writes meanwhile): on a current schema the
check is one query and the API answers at once; migrations run only when the schema is
behind (`cronicorn db upgrade` does the same ahead of time)."""

from __future__ import annotations

import typer

from cronicorn.cli.common import exit_on_config_error


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(9999, min=0, max=65535, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the REST API (OpenAPI docs at /docs). The schema is created/upgraded first if it
    is not current."""
    import uvicorn

    from cronicorn.api import create_app
    from cronicorn.settings import Settings
    from cronicorn.store.migrate import ensure_database_current

    with exit_on_config_error():
        settings = Settings.from_env()
        migrated = ensure_database_current(settings.database_url)
        typer.echo("database schema migrated" if migrated else "database schema current", err=True)
        settings.secret_box()  # create the key file now, not on the first request
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
