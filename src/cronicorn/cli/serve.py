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
    workers: int = typer.Option(
        1, min=1, max=64, help="API processes sharing the port (each opens its own pool)."
    ),
) -> None:
    """Run the REST API (at /api, OpenAPI docs at /docs) and the dashboard (at /). The schema
    is created/upgraded first if it is not current."""
    import uvicorn

    from cronicorn.api import create_app
    from cronicorn.settings import Settings
    from cronicorn.store.migrate import ensure_database_current

    with exit_on_config_error():
        settings = Settings.from_env()
        migrated = ensure_database_current(settings.database_url)
        typer.echo("database schema migrated" if migrated else "database schema current", err=True)
        settings.secret_box()  # create the key file now, not on the first request
    if workers == 1:
        app = create_app(settings, freeze_heap=True)
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    # Several processes: uvicorn imports the factory in each; they read the same environment.
    uvicorn.run(
        "cronicorn.api.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        workers=workers,
        # Workers import the whole app before answering the supervisor's health ping; on a
        # busy machine that takes longer than uvicorn's 5 s default, which kills them in a loop.
        timeout_worker_healthcheck=60,
    )
