"""`cronicorn db …`: schema management, retention and backups."""

from __future__ import annotations

from pathlib import Path

import typer

from cronicorn.cli.common import EXIT_USAGE, console, exit_on_config_error, fail, run

app = typer.Typer(help="Database schema management, pruning and backups.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target Alembic revision.")) -> None:
    """Create or migrate the schema of CRONICORN_DATABASE_URL to the latest revision."""
    from cronicorn.settings import Settings
    from cronicorn.store.migrate import upgrade_database

    with exit_on_config_error():
        settings = Settings.from_env()
        upgrade_database(settings.database_url, revision)
    typer.echo(f"database upgraded to {revision}", err=True)


@app.command("prune")
def prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
) -> None:
    """Remove history past the retention policy (CRONICORN_RUN_RETENTION_DAYS,
    CRONICORN_MAX_RUNS_PER_JOB, CRONICORN_ERROR_RETENTION_DAYS and per-job overrides) and
    print what was removed. Runs still `running` are never removed."""
    from cronicorn.settings import Settings
    from cronicorn.store.db import create_engine
    from cronicorn.store.migrate import prepare_schema
    from cronicorn.store.retention import prune as prune_history
    from cronicorn.store.retention import reclaim_sqlite_space

    with exit_on_config_error():
        settings = Settings.from_env()

    async def go() -> dict[str, int] | None:
        # As every command that opens the database: SQLite migrated, PostgreSQL checked (a
        # missing schema is one line naming `cronicorn db upgrade`).
        await prepare_schema(settings.database_url)
        engine = create_engine(settings.database_url)
        try:
            report = await prune_history(engine, settings.retention, dry_run=dry_run)
            if report.skipped:
                return None
            if not dry_run:
                await reclaim_sqlite_space(engine)
            return report.as_dict()
        finally:
            await engine.dispose()

    counts = run(go())
    if counts is None:
        fail("another process is pruning (an API process's background pruner); try again later")
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb}: " + ", ".join(f"{n} {table}" for table, n in counts.items()))


@app.command("backup")
def backup(
    path: Path = typer.Argument(..., help="File to write the copy to (must not exist)."),
) -> None:
    """Copy the embedded SQLite database to PATH while it is in use (SQLite online backup).
    On PostgreSQL use pg_dump (docs/operations.md). Secrets stay encrypted in the copy: keep
    the secret key (CRONICORN_SECRET_KEY or secret.key) safe, and separately."""
    from cronicorn.settings import Settings
    from cronicorn.store.backup import backup_sqlite

    with exit_on_config_error():
        settings = Settings.from_env()
        if path.exists():
            fail(f"{path} exists: choose a new file", EXIT_USAGE)
        pages = backup_sqlite(settings.database_url, path)
    typer.echo(f"backed up {pages} pages to {path}", err=True)
