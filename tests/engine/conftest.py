"""Engine test fixtures: a real SQLite store, a real local endpoint server and the real
HttpExecutor. Planners and clocks are fakes (tests/fakes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.engine.config import EngineConfig
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import ExecutionConfig
from cronicorn.store.db import create_engine
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.api.conftest import Api, make_api
from tests.fakes.fake_openai import FakeOpenAI


@dataclass
class Target:
    """A local HTTP service: /ok, /fail (500), /slow?ms=N; counts calls and concurrency."""

    base_url: str = ""
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    state = Target()

    async def handle(request: web.Request) -> web.Response:
        state.calls[request.path] += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if request.path == "/slow":
                await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
            if request.path == "/gate":
                await state.release.wait()
            if request.path == "/fail":
                return web.json_response({"error": "boom"}, status=500)
            return web.json_response({"ok": True, "backlog": 3})
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    state.release.set()
    await runner.cleanup()


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (polling briefly) until `predicate()` holds; fail after `timeout_s`."""
    for _ in range(int(timeout_s / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A fresh database (SQLite, and PostgreSQL when configured) with the schema."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def engine_config(**sections: dict[str, object]) -> EngineConfig:
    """Test defaults: private networks allowed (the target is on 127.0.0.1), no retries."""
    execution = {
        "allow_private_networks": True,
        "max_endpoint_retries": 0,
        **sections.pop("execution", {}),
    }
    return EngineConfig.model_validate({"execution": execution, **sections})


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    ex = HttpExecutor(ExecutionConfig(allow_private_networks=True, max_endpoint_retries=0))
    yield ex
    await ex.close()


BackendFactory = Callable[..., LocalSchedulerBackend]


@pytest.fixture
async def make_backend(db: AsyncEngine, box: SecretBox) -> AsyncIterator[BackendFactory]:
    made: list[LocalSchedulerBackend] = []

    def make(**kwargs: object) -> LocalSchedulerBackend:
        backend = LocalSchedulerBackend(db, box, **kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The real REST app on the test database (for tests that drive jobs through the API)."""
    async with make_api(database_url) as client:
        yield client


@pytest.fixture
async def fake_ai() -> AsyncIterator[FakeOpenAI]:
    """The fake OpenAI-compatible server, answering every request with a valid reply."""
    async with FakeOpenAI(auto=True, next_run_s=60) as fake:
        yield fake
