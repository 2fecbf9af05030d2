"""Registers the product commands on the `cronicorn` app (`cli/main.py` calls this once):
`engine …`, `run`, `demo`, `mcp`, `simulate`, `jobs …`, `endpoints …` and `alerts …`."""

from __future__ import annotations

import typer

from cronicorn.cli.alerts import alerts_app
from cronicorn.cli.demo import demo_command
from cronicorn.cli.engine import app as engine_app
from cronicorn.cli.jobs import endpoints_app, jobs_app
from cronicorn.cli.mcp import mcp_command
from cronicorn.cli.run import run_command
from cronicorn.cli.simulate import simulate_command


def register_product_commands(app: typer.Typer) -> None:
    app.add_typer(engine_app, name="engine")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(endpoints_app, name="endpoints")
    app.add_typer(alerts_app, name="alerts")
    app.command("run")(run_command)
    app.command("demo")(demo_command)
    app.command("mcp")(mcp_command)
    app.command("simulate")(simulate_command)
