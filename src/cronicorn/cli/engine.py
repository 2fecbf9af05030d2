"""`cronicorn-engine` (also `cronicorn engine …`): run, inspect and unlock engine workers.

Configuration comes from the environment (SPEC §8); a bad value prints one line naming the
variable and exits 2. The engine talks to the API when `CRONICORN_API_URL` is set, else to
the database in-process.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import typer
from rich.table import Table

from cronicorn.cli.admin import status_report, unlock_jobs
from cronicorn.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    console,
    fail,
    new_typer,
    run,
)
from cronicorn.cli.compose import api_target, build_engine, has_ai_key, open_backend
from cronicorn.engine.config import EngineConfig, SchedulerConfig
from cronicorn.engine.env import engine_config_from_env
from cronicorn.engine.stats import CycleResult
from cronicorn.observability import (
    StatusReport,
    configure_logging,
    render_status,
)
from cronicorn.runtime.heap import freeze_startup_heap
from cronicorn.service.scheduler_admin import UnlockReport
from cronicorn.settings import Settings

app = new_typer("Run, inspect and unlock Cronicorn engine workers.")
log = logging.getLogger("cronicorn.cli")

DEFAULT_HEARTBEAT_MS = SchedulerConfig().heartbeat_interval_ms


def load_config(*, require_ai: bool = False) -> EngineConfig:
    """Engine config from the environment, with logging configured from it."""
    config = engine_config_from_env()
    configure_logging(config.logger.level, config.logger.format, config.logger.sampling_rate)
    if require_ai and not has_ai_key(config):
        raise CliError("OPENAI_API_KEY: required with --require-ai", EXIT_USAGE)
    return config


async def _start(metrics_port: int | None, require_ai: bool, worker_id: str | None) -> None:
    config = load_config(require_ai=require_ai)
    if metrics_port is not None:
        config.metrics.port = metrics_port
    backend = await open_backend()
    try:
        engine = build_engine(config, backend, worker_id=worker_id)
        if engine.config.metrics.port is not None:
            log.info("metrics and health on port %s", engine.config.metrics.port)
        freeze_startup_heap()  # this process is the worker: see cronicorn.runtime.heap
        await engine.run_until_signal()
    finally:
        await backend.close()


@app.command()
def start(
    metrics_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Serve /metrics and /health here.")
    ] = None,
    require_ai: Annotated[
        bool, typer.Option("--require-ai", help="Exit 2 instead of using the rules planner.")
    ] = False,
    worker_id: Annotated[str | None, typer.Option(help="Worker id (default: host-pid-…).")] = None,
) -> None:
    """Run the engine until SIGINT/SIGTERM, then stop gracefully (exit 0)."""
    run(_start(metrics_port, require_ai, worker_id))


def render_cycle(result: CycleResult) -> Table:
    table = Table(title="Cycle result", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("jobs processed", str(result.jobs_processed))
    table.add_row("successful", f"[green]{result.successful_jobs}[/]")
    failed_style = "red" if result.failed_jobs else "green"
    table.add_row("failed", f"[{failed_style}]{result.failed_jobs}[/]")
    table.add_row("aborted", str(result.aborted_jobs))
    table.add_row("duration", f"{result.duration_ms:.0f} ms")
    return table


async def _process() -> CycleResult:
    config = load_config()
    backend = await open_backend()
    try:
        engine = build_engine(config, backend)
        try:
            return await engine.process_cycle()
        finally:
            await engine.stop()
    finally:
        await backend.close()  # the caller owns it (an API backend holds an HTTP session)


@app.command()
def process() -> None:
    """Run one cycle (what is due now) and print the result; exit 1 if any job failed."""
    result = run(_process())
    if result.jobs_processed == 0 and not result.errors:
        console.print("No jobs due.")
    else:
        console.print(render_cycle(result))
    for error in result.errors:
        console.print(f"[red]error[/]: {error}", markup=True, highlight=False)
    if result.failed_jobs or result.errors:
        raise typer.Exit(EXIT_FAILED)


async def _status(heartbeat_interval_s: float) -> StatusReport:
    target = api_target()
    settings = Settings.from_env() if target is None else Settings()
    return await status_report(target, settings, heartbeat_interval_s)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    heartbeat_interval_ms: Annotated[
        int,
        typer.Option(min=1, help="The workers' heartbeat interval (alive = 3 intervals)."),
    ] = DEFAULT_HEARTBEAT_MS,
) -> None:
    """Live workers and their stats, jobs due, locked, stale locks, failing jobs, tokens."""
    report = run(_status(heartbeat_interval_ms / 1000))
    if as_json:
        print(report.to_json())
    else:
        console.print(render_status(report))


async def _unlock(job_ids: list[str] | None, stale: bool) -> UnlockReport:
    target = api_target()
    settings = Settings.from_env() if target is None else Settings()
    return await unlock_jobs(target, settings, job_ids, stale_only=stale)


def render_unlock(report: UnlockReport, stale: bool) -> Table | str:
    if not report.released:
        return "No locks released." + (" (no stale locks)" if stale else "")
    table = Table(title=f"Released {len(report.released)} lock(s)", title_justify="left")
    table.add_column("job id")
    table.add_column("name")
    for job_id in report.released:
        table.add_row(job_id, report.names.get(job_id, ""))
    return table


@app.command("unlock-jobs")
def unlock_jobs_command(
    stale: Annotated[bool, typer.Option("--stale", help="Release expired leases.")] = False,
    job: Annotated[
        list[str] | None, typer.Option("--job", help="Release this job's lock (repeatable).")
    ] = None,
) -> None:
    """Release stale or named job locks and print what was released."""
    if not stale and not job:
        raise typer.BadParameter("give --stale and/or --job ID")
    for job_id in job or []:
        try:
            uuid.UUID(job_id)
        except ValueError:
            fail(f"--job {job_id!r}: unknown job id (job ids are UUIDs)", EXIT_FAILED)
    report = run(_unlock(job or None, stale))
    console.print(render_unlock(report, stale))


if __name__ == "__main__":  # pragma: no cover
    app()
