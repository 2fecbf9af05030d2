"""`cronicorn demo`: the whole product in one command, with nothing configured.

A throw-away SQLite file, the all-in-one process (API + engine), the built-in target service on
127.0.0.1, a tenant with a key, the demo jobs created through the API; then live progress for
`duration` seconds and a table of every run with its next-run decision and source. The AI plans
and schedules when `OPENAI_API_KEY` is set, the rules planner otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cronicorn.cli.allinone import AllInOne
from cronicorn.cli.compose import has_ai_key
from cronicorn.cli.keys import create_key
from cronicorn.client.user_api import UserApiClient
from cronicorn.demo.jobs import demo_job_specs, split_spec
from cronicorn.demo.target import DemoTarget, start_target
from cronicorn.demo.view import JobTrack, live_table, progress_line, runs_table
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.env import engine_config_from_env
from cronicorn.engine.signals import signals_set
from cronicorn.observability import configure_logging
from cronicorn.service.schemas import EndpointCreate, JobCreate, RunDetail
from cronicorn.settings import Settings
from cronicorn.store.secrets import SecretBox

REFRESH_S = 0.5
WIDE_COLUMNS = 120
"""Terminals at least this wide get the strategy and reasoning columns."""
TARGET_HOST = "127.0.0.1"
DEMO_TENANT = "demo"
log = logging.getLogger("cronicorn.demo")


def demo_engine_config(environ: dict[str, str] | None = None) -> EngineConfig:
    """Short timings for a ~30 s demo; env variables still apply (SPEC §8). The target is on
    127.0.0.1, so that one host is allowed rather than every private network."""
    base = EngineConfig.model_validate(
        {
            "execution": {"allowed_hosts": [TARGET_HOST], "max_endpoint_retries": 1},
            "scheduler": {
                "processing_interval_ms": 1_000,
                "heartbeat_interval_ms": 2_000,
                "shutdown_grace_ms": 3_000,
                "claim_wait_ms": 1_000,
            },
        }
    )
    config = engine_config_from_env(environ, base=base)
    if TARGET_HOST not in config.execution.allowed_hosts:
        config.execution.allowed_hosts = [*config.execution.allowed_hosts, TARGET_HOST]
    return config


def planner_banner(config: EngineConfig) -> str:
    if has_ai_key(config):
        where = config.ai_agent.base_url or "OpenAI"
        return f"Planner: AI ({config.ai_agent.model} via {where}); rules planner as fallback."
    return (
        "Planner: rules (no OPENAI_API_KEY set): baseline intervals, backoff on failure. "
        "Set OPENAI_API_KEY (and optionally OPENAI_BASE_URL) to let the AI plan and schedule."
    )


def dashboard_line(api_url: str, key: str) -> str:
    """Where to watch the demo in a browser, and the key to sign in with."""
    return f"Dashboard {api_url}/ : sign in with the key {key}"


@dataclass
class DemoOptions:
    duration_s: float = 30.0
    keep_db: bool = False


async def _create_jobs(api: UserApiClient, target: DemoTarget) -> list[JobTrack]:
    tracks = []
    for spec in demo_job_specs(target.base_url):
        job_body, endpoint_bodies = split_spec(spec)
        # Paused until its endpoints exist, so the first run already calls them.
        job = await api.create_job(JobCreate.model_validate({**job_body, "status": "paused"}))
        names = {}
        for body in endpoint_bodies:
            endpoint = await api.create_endpoint(job.id, EndpointCreate.model_validate(body))
            names[endpoint.id] = endpoint.name
        job = await api.resume_job(job.id)
        tracks.append(JobTrack(job=job, endpoint_names=names))
    return tracks


async def refresh(api: UserApiClient, tracks: list[JobTrack]) -> list[tuple[JobTrack, RunDetail]]:
    """Re-read each job and fetch its newly finished runs (returned for progress lines)."""
    new: list[tuple[JobTrack, RunDetail]] = []
    for track in tracks:
        track.job = await api.get_job(track.job.id)
        for run in track.new_finished(await api.runs(track.job.id, limit=100)):
            detail = await api.run(run.id)
            track.add(detail)
            new.append((track, detail))
    return new


class DemoSession:
    """Runs the demo loop and prints; separated from setup so each part stays small."""

    def __init__(self, console: Console, api: UserApiClient, tracks: list[JobTrack]) -> None:
        self.console = console
        self.api = api
        self.tracks = tracks
        self.start = datetime.now(UTC)

    async def run(self, duration_s: float, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration_s
        if self.console.is_terminal:
            with Live(self._live(duration_s), console=self.console, auto_refresh=False) as live:
                while not await self._tick(deadline, stop):
                    live.update(self._live(duration_s), refresh=True)
        else:
            while not await self._tick(deadline, stop):
                pass

    def _live(self, duration_s: float) -> Table:
        now = datetime.now(UTC)
        return live_table(self.tracks, now, (now - self.start).total_seconds(), duration_s)

    async def _tick(self, deadline: float, stop: asyncio.Event) -> bool:
        """Wait one refresh interval (or until stopped) and refresh; True when done."""
        loop = asyncio.get_running_loop()
        timeout = max(0.0, min(REFRESH_S, deadline - loop.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout)
        for track, run in await refresh(self.api, self.tracks):
            if not self.console.is_terminal:
                line = progress_line(self.start, track, run)
                self.console.print(line, markup=False, highlight=False)
        return stop.is_set() or loop.time() >= deadline


def _quiet_logging() -> None:
    """Only errors on stderr unless the user asked for a level: the views are the output."""
    level = os.environ.get("CRONICORN_LOG_LEVEL", "").strip().upper() or "ERROR"
    configure_logging(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "ERROR")


async def run_demo(options: DemoOptions, console: Console) -> int:
    """The whole demo; returns the exit code (0, also when ended early with Ctrl-C)."""
    stop = asyncio.Event()
    with signals_set(stop):
        return await _run_demo(options, console, stop)


async def _run_demo(options: DemoOptions, console: Console, stop: asyncio.Event) -> int:
    config = demo_engine_config()
    _quiet_logging()
    workdir = Path(tempfile.mkdtemp(prefix="cronicorn-demo-"))
    db_path = workdir / "demo.db"
    settings = Settings(database_url=f"sqlite:///{db_path}", secret_key=SecretBox.generate_key())
    console.print("[bold]Cronicorn demo[/]: an AI-driven HTTP job scheduler, all in one process.")
    console.print(planner_banner(config), highlight=False)
    target = await start_target(TARGET_HOST)
    try:
        async with AllInOne(settings, config, host=TARGET_HOST, port=0) as aio:
            key = await create_key(settings, DEMO_TENANT, "user")  # a fresh database has none
            async with UserApiClient(aio.api_url, key) as api:
                tracks = await _create_jobs(api, target)
                console.print(
                    f"API {aio.api_url} · target service {target.base_url} · database {db_path}\n"
                    f"Created {len(tracks)} job(s): "
                    + ", ".join(f"{t.job.name} ({len(t.endpoint_names)} endpoints)" for t in tracks)
                    + f". Running for {options.duration_s:g}s …",
                    highlight=False,
                )
                console.print(dashboard_line(aio.api_url, key), highlight=False, markup=False)
                session = DemoSession(console, api, tracks)
                await session.run(options.duration_s, stop)
                console.print("Stopping the engine (running jobs finish first) …")
                await aio.stop_engine()
                await refresh(api, tracks)
            _summary(console, session, target)
    finally:
        await target.stop()
        if options.keep_db:
            console.print(f"Database kept at {db_path}", highlight=False)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _summary(console: Console, session: DemoSession, target: DemoTarget) -> None:
    console.print(runs_table(session.start, session.tracks, wide=console.width >= WIDE_COLUMNS))
    runs = [run for track in session.tracks for run in track.runs]
    sources = sorted({r.schedule.source for r in runs if r.schedule and r.schedule.source})
    calls = ", ".join(f"{name} {count}" for name, count in sorted(target.calls.items()))
    console.print(
        f"{len(runs)} run(s). Next-run sources seen: {', '.join(sources) or '-'}. "
        f"Target calls: {calls or '-'}.",
        highlight=False,
    )
