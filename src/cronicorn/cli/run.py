"""`cronicorn run`: the API and one engine in one process (see `cronicorn.cli.allinone`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from cronicorn.cli.common import console, run
from cronicorn.settings import Settings

if TYPE_CHECKING:
    from cronicorn.engine.config import EngineConfig


async def _run(host: str, port: int) -> None:
    from cronicorn.cli.engine import load_config
    from cronicorn.engine.signals import signals_set

    config = load_config()
    settings = Settings.from_env()
    stop = asyncio.Event()
    with signals_set(stop):
        await _serve(settings, config, host, port, stop)


async def _serve(
    settings: Settings, config: EngineConfig, host: str, port: int, stop: asyncio.Event
) -> None:
    from cronicorn.cli.allinone import AllInOne

    async with AllInOne(settings, config, host=host, port=port, freeze_heap=True) as aio:
        console.print(
            f"Cronicorn running: dashboard [bold]{aio.api_url}/[/], API {aio.api_url}/api "
            f"(docs at {aio.api_url}/docs), "
            f"engine worker {aio.engine.worker_id}, database {settings.database_url}.\n"
            "Create a key to sign in with: `cronicorn keys create --tenant NAME --scope user`. "
            "Ctrl-C stops.",
            highlight=False,
        )
        await stop.wait()
        console.print("Stopping: finishing running jobs …")


def run_command(
    host: Annotated[str, typer.Option(help="Interface for the API.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port for the API.")] = 8000,
) -> None:
    """API + one engine in one process, on the default SQLite database."""
    run(_run(host, port))
