"""Run a job through the real pipeline — planner, executor, governor, store — on a virtual
clock, against a built-in service on 127.0.0.1 whose answers follow a scenario's timeline.

Nothing is mocked but time: a temporary SQLite database with the real schema, the job made
through the service layer, `SchedulingEngine.process_cycle` with the configured planner (the
model behind `OPENAI_API_KEY`/`OPENAI_BASE_URL`, or the rules planner), the real
`HttpExecutor` calling the service over HTTP. Between runs the clock jumps to the next due
time, so a simulated day takes seconds (plus the model's own latency when one is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from cronicorn.ai import create_planner
from cronicorn.domain.models import Scope
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.executor import HttpExecutor
from cronicorn.service import Principal, Services
from cronicorn.service.schemas import EndpointCreate, JobCreate
from cronicorn.simulation.scenarios import Scenario
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.migrate import upgrade_database_async
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Run

START = datetime(2030, 1, 7, 0, 0, tzinfo=UTC)
"""Simulated midnight (UTC) at which every simulation starts."""
MAX_REAL_SLEEP_S = 0.05

JOB = {
    "name": "queue-watch",
    "definition": (
        "Watch the work queue. When it is high (status `high`, more than 100 items) check "
        "every minute; when it is normal every 10 to 15 minutes. If the endpoint fails, "
        "back off and retry, and return to normal once it recovers."
    ),
    "interval_ms": 15 * 60_000,
    "min_interval_ms": 60_000,
    "max_interval_ms": 60 * 60_000,
}


class VirtualClock:
    """The engine's `Clock`, moved by the simulator. `sleep` waits (briefly, in real time)
    without moving simulated time: lease renewals and retry backoffs stay cheap."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(max(seconds, 0.0), MAX_REAL_SLEEP_S))

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(
            min(max(seconds, 0.0), MAX_REAL_SLEEP_S), callback
        )

    def advance_to(self, when: datetime) -> None:
        if when > self._now:
            self._mono += (when - self._now).total_seconds()
            self._now = when


@dataclass(frozen=True, slots=True)
class SimRun:
    started_at: datetime
    finished_at: datetime
    status: str
    ai_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    ai_trigger: str | None
    source: str
    next_run_at: datetime
    plan_source: str | None = None

    @property
    def interval_s(self) -> float:
        return (self.next_run_at - self.finished_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Reaction:
    at_h: float
    description: str
    reacted_after_s: float | None
    """Simulated seconds from the change to the end of the first run whose schedule differs
    from the last one before the change (None: it never did)."""
    before: str
    after: str | None


@dataclass
class SimulationResult:
    scenario: str
    mode: str
    planner: str
    model: str | None
    hours: float
    runs: list[SimRun] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)

    @property
    def ai_calls(self) -> int:
        return sum(r.ai_calls for r in self.runs)

    @property
    def tokens(self) -> int:
        return sum(r.input_tokens + r.output_tokens for r in self.runs)

    @property
    def cost_usd(self) -> float:
        return round(sum(r.cost_usd for r in self.runs), 9)

    @property
    def fallbacks(self) -> int:
        """Runs planned by the rules although a model is configured (it failed or a budget
        was spent)."""
        if self.planner != "ai":
            return 0
        return sum(1 for r in self.runs if r.plan_source == "rules")

    def per_day(self, value: float) -> float:
        return value * 24 / self.hours


async def run_simulation(
    scenario: Scenario, config: EngineConfig, *, mode: str, hours: float = 24.0
) -> SimulationResult:
    """Simulate `hours` of `scenario` with `config`'s planner in AI `mode`."""
    config = config.model_copy(deep=True)
    config.ai_agent.mode = mode  # type: ignore[assignment]
    clock = VirtualClock()
    async with _database() as url, _target(scenario, clock) as target_url:
        if "127.0.0.1" not in config.execution.allowed_hosts:
            config.execution.allowed_hosts = [*config.execution.allowed_hosts, "127.0.0.1"]
        db = create_engine(url)
        box = SecretBox(SecretBox.generate_key())
        services = Services.build(session_factory(db), box, clock.now)
        backend = LocalSchedulerBackend(db, box, clock=clock, listen=False)
        planner = create_planner(
            config.ai_agent, rules_strategy=config.scheduler.rules_strategy, clock=clock
        )
        executor = HttpExecutor(config.execution, clock=clock)
        engine = SchedulingEngine(
            config, backend=backend, planner=planner, executor=executor, clock=clock
        )
        try:
            job_id = await _create_job(services, target_url)
            await _drive(engine, backend, clock, START + timedelta(hours=hours))
            runs = await _runs(db, job_id)
        finally:
            await planner.close()
            await executor.close()
            await backend.close()
            await db.dispose()
    has_model = type(planner).__name__ == "OpenAIPlanner"
    return SimulationResult(
        scenario=scenario.name,
        mode=mode,
        planner="ai" if has_model else "rules",
        model=config.ai_agent.model if has_model else None,
        hours=hours,
        runs=runs,
        reactions=reactions(scenario, runs),
    )


async def _drive(
    engine: SchedulingEngine, backend: LocalSchedulerBackend, clock: VirtualClock, end: datetime
) -> None:
    while True:
        due = await backend.next_due_at()
        if due is None or due >= end:
            return
        clock.advance_to(due)
        await engine.process_cycle()


async def _create_job(services: Services, target_url: str) -> str:
    key = await services.keys.create("simulation", Scope.USER.value)
    principal = Principal(tenant_id=key.tenant_id, scope=Scope.USER, key_id=key.id)
    job = await services.jobs.create(principal, JobCreate.model_validate(JOB))
    endpoint = {"name": "queue", "url": f"{target_url}/queue", "description": "the work queue"}
    await services.endpoints.create(principal, job.id, EndpointCreate.model_validate(endpoint))
    return job.id


async def _runs(db: Any, job_id: str) -> list[SimRun]:
    async with db.connect() as conn:
        rows = await conn.execute(
            sa.select(Run).where(Run.job_id == job_id).order_by(Run.started_at, Run.id)
        )
        out = []
        for row in rows.mappings():
            schedule = row["schedule"] or {}
            if row["finished_at"] is None or not schedule.get("next_run_at"):
                continue
            out.append(
                SimRun(
                    started_at=row["started_at"],
                    finished_at=row["finished_at"],
                    status=row["status"],
                    ai_calls=row["ai_calls"],
                    input_tokens=row["input_tokens"],
                    output_tokens=row["output_tokens"],
                    cost_usd=row["cost_usd"],
                    ai_trigger=row["ai_trigger"],
                    source=str(schedule.get("source")),
                    next_run_at=datetime.fromisoformat(schedule["next_run_at"]),
                    plan_source=row["plan_source"],
                )
            )
        return out


def _label(run: SimRun) -> str:
    return f"{run.source} every {_human(run.interval_s)}"


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def _differs(a: SimRun, b: SimRun) -> bool:
    """A different schedule: another rule chose it, or the interval moved by over 10 %."""
    if a.source != b.source:
        return True
    return abs(a.interval_s - b.interval_s) > 0.1 * max(a.interval_s, b.interval_s, 1.0)


def reactions(scenario: Scenario, runs: Sequence[SimRun]) -> list[Reaction]:
    out = []
    for change in scenario.changes:
        at = START + timedelta(hours=change.at_h)
        before = [r for r in runs if r.started_at < at]
        after = [r for r in runs if r.started_at >= at]
        if not before:
            out.append(Reaction(change.at_h, change.description, None, "—", None))
            continue
        reference = before[-1]
        reacted = next((r for r in after if _differs(r, reference)), None)
        out.append(
            Reaction(
                change.at_h,
                change.description,
                None if reacted is None else (reacted.finished_at - at).total_seconds(),
                _label(reference),
                None if reacted is None else _label(reacted),
            )
        )
    return out


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="cronicorn-sim-"))
    try:
        url = f"sqlite:///{folder / 'simulation.db'}"
        await upgrade_database_async(url)
        yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def _target(scenario: Scenario, clock: VirtualClock) -> AsyncIterator[str]:
    """The built-in service: `GET /queue` answers what the timeline says at simulated now."""

    async def queue(_: web.Request) -> web.Response:
        hours = (clock.now() - START).total_seconds() / 3600
        answer = scenario.answer(hours)
        return web.json_response(answer.body, status=answer.status)

    app = web.Application()
    app.router.add_get("/queue", queue)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
