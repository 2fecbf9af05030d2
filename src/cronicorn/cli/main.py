"""The `cronicorn` command. Each command group lives in its own module and is registered
here; add new groups (`engine`, `jobs`, `endpoints`, `run`, `demo`) the same way."""

from __future__ import annotations

import typer

from cronicorn.cli import db, keys, serve
from cronicorn.cli.commands import register_product_commands

app = typer.Typer(
    name="cronicorn",
    help="Cronicorn: an AI-driven HTTP job scheduler.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
register_product_commands(app)


if __name__ == "__main__":  # pragma: no cover
    app()
