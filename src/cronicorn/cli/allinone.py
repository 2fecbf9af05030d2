"""The all-in-one process: the API (uvicorn) and one engine in one event loop, one database.

The engine uses the in-process `LocalSchedulerBackend` on the API's database (no HTTP hop);
jobs created through the API become visible to it through the backend's wake-ups and its
short poll. The API's /metrics also shows the engine's metrics. Used by `cronicorn run`
(`cronicorn.cli.run`) and `cronicorn demo`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from cronicorn.cli.common import CliError
from cronicorn.cli.compose import build_engine, open_local_backend
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.settings import Settings

LOCAL_POLL_MS = 250
"""How often an idle in-process engine re-checks the database for new jobs."""
STARTUP_TIMEOUT_S = 30.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AllInOne:
    """`async with AllInOne(settings, config) as aio:` serves the API on `aio.api_url` and
    runs `aio.engine` until the block ends (then: engine stopped gracefully, server shut)."""

    def __init__(
        self,
        settings: Settings,
        config: EngineConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        worker_id: str | None = None,
        log_level: str = "warning",
        freeze_heap: bool = False,
    ) -> None:
        """`freeze_heap`: once both are started, freeze the process's start-up heap out of
        the garbage collector's full passes (`cronicorn.runtime.heap`); for `cronicorn run`,
        whose process is this and nothing else."""
        self.freeze_heap = freeze_heap
        self.settings = settings
        self.config = config
        self.host = host
        self.port = port
        self.worker_id = worker_id
        self.log_level = log_level
        self._server: _EmbeddedServer | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._engine: SchedulingEngine | None = None

    @property
    def engine(self) -> SchedulingEngine:
        assert self._engine is not None, "not started"
        return self._engine

    @property
    def api_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        from cronicorn.api.app import add_metrics_registry, create_app

        backend = await open_local_backend(self.settings, poll_interval_ms=LOCAL_POLL_MS)
        app = create_app(self.settings)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level=self.log_level,
            access_log=False,
            lifespan="on",
        )
        self._server = _EmbeddedServer(config)
        self._serve_task = asyncio.create_task(self._server.serve(), name="cronicorn-api")
        try:
            await self._wait_started()
        except BaseException:
            await backend.close()
            raise
        self._engine = build_engine(self.config, backend, worker_id=self.worker_id)
        if self._engine.metrics is not None:
            add_metrics_registry(app, self._engine.metrics.registry)
        await self._engine.start()
        if self.freeze_heap:
            from cronicorn.runtime.heap import freeze_startup_heap

            freeze_startup_heap()

    async def _wait_started(self) -> None:
        assert self._server is not None
        assert self._serve_task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._serve_task.done() or loop.time() > deadline:
                with contextlib.suppress(BaseException):
                    await self._serve_task
                raise CliError(f"the API could not start on {self.host}:{self.port}")
            await asyncio.sleep(0.02)
        for server in self._server.servers:
            for sock in server.sockets:
                self.port = int(sock.getsockname()[1])
                return

    async def stop_engine(self) -> None:
        """Stop the engine gracefully (running jobs finish or are aborted); the API stays."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await engine.stop()
            await engine.backend.close()

    async def stop(self) -> None:
        await self.stop_engine()
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(BaseException):
                await self._serve_task
            self._server = self._serve_task = None

    async def __aenter__(self) -> AllInOne:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
