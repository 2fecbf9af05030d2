"""CLI test fixtures: a clean environment on a fresh SQLite file, a runner that invokes
commands in a worker thread (so servers on the test's event loop keep answering while a
command runs), and a local endpoint server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from cronicorn.cli.allinone import AllInOne
from cronicorn.cli.main import app as main_app
from cronicorn.engine.config import EngineConfig
from cronicorn.settings import Settings
from cronicorn.store.secrets import SecretBox

Invoke = Callable[..., Awaitable[Result]]


@pytest.fixture(autouse=True)
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Only what the test sets: no API URL/key, no AI key, a fresh SQLite database."""
    for name in list(os.environ):
        if name.startswith(("CRONICORN_", "OPENAI_")):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CRONICORN_DATABASE_URL", url)
    monkeypatch.setenv("CRONICORN_SECRET_KEY", SecretBox.generate_key())
    monkeypatch.setenv("CRONICORN_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("CRONICORN_MAX_ENDPOINT_RETRIES", "0")
    monkeypatch.setenv("CRONICORN_LOG_LEVEL", "ERROR")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield url
    # configure_logging() (called by commands) pointed a handler at the runner's stream.
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def invoke() -> Invoke:
    """`await invoke("jobs", "list")`: run `cronicorn …` in a thread; returns the Result."""
    runner = CliRunner()

    async def call(*args: str) -> Result:
        return await asyncio.to_thread(lambda: runner.invoke(main_app, list(args)))

    return call


@pytest.fixture
async def live_api(cli_env: str) -> AsyncIterator[str]:
    """`cronicorn run` in this event loop (API + one engine) on the test database."""
    config = EngineConfig.model_validate({"scheduler": {"heartbeat_interval_ms": 200}})
    async with AllInOne(Settings.from_env(), config, port=0, worker_id="aio-worker") as aio:
        yield aio.api_url


@dataclass
class Endpoints:
    """/ok answers 200, /fail answers 500; counts calls per path."""

    base_url: str = ""
    calls: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
async def endpoints() -> AsyncIterator[Endpoints]:
    state = Endpoints()

    async def handle(request: web.Request) -> web.Response:
        state.calls[request.path] += 1
        if request.path == "/fail":
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


def one_line(text: str) -> str:
    """The output's only non-empty line (fails if there are more)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]
