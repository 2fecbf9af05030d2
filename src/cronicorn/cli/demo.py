"""`cronicorn demo`: the all-in-one demo with a built-in target service (see
`cronicorn.demo.runner`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cronicorn.cli.common import console, run

PLAIN_WIDTH = 160
"""Width of the final table when the output is not a terminal (logs, CI)."""


def demo_command(
    duration: Annotated[
        float, typer.Option(min=1.0, max=86_400.0, help="Seconds to run before the summary.")
    ] = 30.0,
    keep_db: Annotated[
        bool, typer.Option("--keep-db", help="Keep the demo's SQLite file (path printed).")
    ] = False,
) -> None:
    """Run the demo: API + engine + a target service on 127.0.0.1, live progress, a table of
    runs. Needs no configuration; uses the AI when OPENAI_API_KEY is set."""
    from cronicorn.demo.runner import DemoOptions, run_demo  # heavy: only when running

    out = console if console.is_terminal else Console(width=PLAIN_WIDTH, highlight=False)
    code = run(run_demo(DemoOptions(duration_s=duration, keep_db=keep_db), out))
    raise typer.Exit(code)
