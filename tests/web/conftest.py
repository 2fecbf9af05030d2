"""Dashboard test fixtures: the real all-in-one process (API + dashboard + engine) on
127.0.0.1 in a background thread, a target service for the jobs' endpoints, seeded tenants
and jobs, and headless Debian chromium driven by Selenium."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from cronicorn.cli.allinone import AllInOne
from cronicorn.engine.config import EngineConfig
from cronicorn.service import Services
from cronicorn.service.schemas import EndpointCreate, JobCreate
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.migrate import upgrade_database
from cronicorn.store.secrets import SecretBox

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).parent / "screenshots"
XSS_NAME = "<img src=x onerror=alert(1)>"
HOUR_MS = 3_600_000


@dataclass
class LiveDashboard:
    """The running process; `call` runs a coroutine on its event loop."""

    url: str
    keys: dict[str, str]
    jobs: dict[str, str] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    services: Services | None = None

    def call(self, fn: Callable[[Services], Awaitable[T]]) -> T:
        assert self.loop is not None
        assert self.services is not None
        services = self.services
        future: Future[T] = asyncio.run_coroutine_threadsafe(_wrap(fn(services)), self.loop)
        return future.result(timeout=30)


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _target() -> tuple[web.AppRunner, str]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"orders": 3, "status": "normal"})

    app = web.Application()
    app.router.add_get("/orders", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def _seed(services: Services, target: str, live: LiveDashboard) -> None:
    for who, tenant, scope in (("alice", "alice", "user"), ("bob", "bob", "user")):
        live.keys[who] = (await services.keys.create(tenant, scope)).key
    live.keys["admin"] = (await services.keys.create("ops", "admin")).key
    live.keys["engine"] = (await services.keys.create("ops", "engine")).key
    alice = await services.keys.authenticate(live.keys["alice"])
    assert alice is not None
    specs = {
        "orders": JobCreate(
            name="orders-sync",
            definition="Check the order backlog; poll faster when it grows.",
            interval_ms=HOUR_MS,
            status="paused",
        ),
        "reports": JobCreate(
            name="nightly-reports", definition="Build reports.", cron="0 3 * * *", status="paused"
        ),
        "xss": JobCreate(name=XSS_NAME, definition=XSS_NAME, interval_ms=HOUR_MS, status="paused"),
    }
    for slug, spec in specs.items():
        job = await services.jobs.create(alice, spec)
        live.jobs[slug] = job.id
    await services.endpoints.create(
        alice,
        live.jobs["orders"],
        EndpointCreate(
            name="backlog",
            url=f"{target}/orders",
            headers={"X-Api-Key": "header-secret-value"},
            bearer_token="bearer-secret-value",
        ),
    )
    await services.jobs.resume(alice, live.jobs["orders"])  # due now: the engine runs it


def _serve(live: LiveDashboard, db_url: str, ready: threading.Event, stop: list[Any]) -> None:
    async def main() -> None:
        runner, target = await _target()
        settings = Settings(database_url=db_url, secret_key=SecretBox.generate_key())
        config = EngineConfig.model_validate(
            {
                "execution": {"allowed_hosts": ["127.0.0.1"]},
                "scheduler": {"processing_interval_ms": 500, "heartbeat_interval_ms": 1000},
            }
        )
        done = asyncio.Event()
        stop.append((asyncio.get_running_loop(), done))
        try:
            async with AllInOne(settings, config, port=0, worker_id="web-test-worker") as aio:
                live.url = aio.api_url
                live.loop = asyncio.get_running_loop()
                db = create_engine(db_url)
                live.services = Services.build(session_factory(db), settings.secret_box())
                try:
                    await _seed(live.services, target, live)
                    ready.set()
                    await done.wait()
                finally:
                    await db.dispose()
        finally:
            await runner.cleanup()
            ready.set()

    asyncio.run(main())


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDashboard]:
    os.environ.pop("OPENAI_API_KEY", None)  # the rules planner: no AI calls in these tests
    db_url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'dashboard.db'}"
    upgrade_database(db_url)
    live = LiveDashboard(url="", keys={})
    ready = threading.Event()
    stop: list[Any] = []
    thread = threading.Thread(target=_serve, args=(live, db_url, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(60), "dashboard did not start"
    assert live.url, "dashboard failed to start"
    yield live
    loop, done = stop[0]
    loop.call_soon_threadsafe(done.set)
    thread.join(30)


@pytest.fixture(scope="session")
def browser_binaries() -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium/chromedriver missing under CI (.ci/run installs them)")
        pytest.skip("chromium and chromium-driver are not installed")
    SCREENSHOTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def driver(browser_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(SCREENSHOTS / ".tmp", ignore_errors=True)
