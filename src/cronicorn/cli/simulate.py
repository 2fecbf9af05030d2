"""`cronicorn simulate SCENARIO`: hours of a job's life in seconds (see
`cronicorn.simulation`)."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Annotated

import typer

from cronicorn.cli.common import console, run


class Scenario(StrEnum):
    steady = "steady"
    surge = "surge"
    outage = "outage"
    drift = "drift"


class Mode(StrEnum):
    every_run = "every_run"
    on_change = "on_change"
    both = "both"


def simulate_command(
    scenario: Annotated[Scenario, typer.Argument(help="steady, surge, outage or drift.")],
    mode: Annotated[
        Mode, typer.Option(help="AI mode: every_run, on_change, or both side by side.")
    ] = Mode.both,
    hours: Annotated[float, typer.Option(min=1.0, max=24.0 * 31, help="Simulated hours.")] = 24.0,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the engine's log.")] = False,
) -> None:
    """Run a job through the real pipeline (planner, executor, governor, store) on a virtual
    clock against a built-in service whose answers follow SCENARIO's timeline, then print
    runs, model calls, tokens, cost, and how long the schedule took to react to each change.
    Uses the model configured (OPENAI_API_KEY, OPENAI_BASE_URL, CRONICORN_AI_MODEL) or the
    rules planner."""
    from cronicorn.engine.env import engine_config_from_env  # heavy: only when running
    from cronicorn.simulation.report import print_results
    from cronicorn.simulation.runner import run_simulation
    from cronicorn.simulation.scenarios import SCENARIOS

    modes = ["every_run", "on_change"] if mode is Mode.both else [mode.value]

    async def main() -> int:
        config = engine_config_from_env()
        results = [
            await run_simulation(SCENARIOS[scenario.value], config, mode=m, hours=hours)
            for m in modes
        ]
        print_results(console, results)
        return 0

    logger = logging.getLogger("cronicorn")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.ERROR)
    try:
        code = run(main())
    finally:
        logger.setLevel(level)  # run in-process (tests, embedding): leave logging as it was
    raise typer.Exit(code)
