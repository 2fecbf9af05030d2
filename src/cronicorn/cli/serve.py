"""`cronicorn serve`: migrate the database, then run the API with uvicorn."""

from __future__ import annotations

import typer

from cronicorn.cli.common import exit_on_config_error


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(9999, min=0, max=65535, help="TCP port."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Run the REST API (at /api, OpenAPI docs at /docs) and the dashboard (at /). The schema
    is created/upgraded first."""
    import uvicorn

    from cronicorn.api import create_app
    from cronicorn.settings import Settings
    from cronicorn.store.migrate import upgrade_database

    with exit_on_config_error():
        settings = Settings.from_env()
        upgrade_database(settings.database_url)
        settings.secret_box()  # create the key file now, not on the first request
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
