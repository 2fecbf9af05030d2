"""`create_scheduling_engine`: the library's composition root (SPEC §4).

Adapters not given are built from the configuration: the planner from `ai_agent` (the
rules planner without a key), the HTTP executor from `execution`, and the backend from the
environment — `ApiSchedulerBackend` when CRONICORN_API_URL is set (with CRONICORN_API_KEY),
else `LocalSchedulerBackend` on CRONICORN_DATABASE_URL (default `sqlite:///./cronicorn.db`),
whose schema the engine prepares before its first claim: embedded SQLite is migrated (the
file created, with a log line saying where), PostgreSQL is only checked (one clear error
naming `cronicorn db upgrade`).
Adapters are imported here, lazily, so `import cronicorn` stays fast; the ones built here
are owned by the engine and closed by `stop()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cronicorn.ai.planner import Planner
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.ports import Executor, SchedulerBackend
from cronicorn.errors import ConfigError
from cronicorn.runtime.clock import Clock

API_URL_ENV = "CRONICORN_API_URL"
API_KEY_ENV = "CRONICORN_API_KEY"


def create_scheduling_engine(
    config: Mapping[str, Any] | EngineConfig | None = None,
    *,
    backend: SchedulerBackend | None = None,
    planner: Planner | None = None,
    executor: Executor | None = None,
    clock: Clock | None = None,
    worker_id: str | None = None,
) -> SchedulingEngine:
    """Build an engine; missing config fields take their defaults.

    When the configuration sets `logger` explicitly, the process's logging is configured from
    it (level, text/JSON format, sampling rate); otherwise the host application's logging is
    left alone."""
    cfg = config if isinstance(config, EngineConfig) else EngineConfig.model_validate(config or {})
    if "logger" in cfg.model_fields_set:
        from cronicorn.observability import configure_logging

        log = cfg.logger
        configure_logging(log.level, log.format, log.sampling_rate)
    owned: list[object] = []
    if planner is None:
        from cronicorn.ai import create_planner

        planner = create_planner(
            cfg.ai_agent, rules_strategy=cfg.scheduler.rules_strategy, clock=clock
        )
        owned.append(planner)
    if executor is None:
        from cronicorn.executor import HttpExecutor

        executor = HttpExecutor(cfg.execution)
        owned.append(executor)
    if backend is None:
        backend = default_backend(clock=clock)
        owned.append(backend)
    return SchedulingEngine(
        cfg,
        backend=backend,
        planner=planner,
        executor=executor,
        clock=clock,
        worker_id=worker_id,
        owned=owned,
    )


def default_backend(
    environ: Mapping[str, str] | None = None, *, clock: Clock | None = None
) -> SchedulerBackend:
    """The API when CRONICORN_API_URL is set, else the database in-process."""
    env = os.environ if environ is None else environ
    api_url = env.get(API_URL_ENV)
    if api_url:
        api_key = env.get(API_KEY_ENV)
        if not api_key:
            raise ConfigError(f"{API_KEY_ENV}: required when {API_URL_ENV} is set")
        from cronicorn.client import ApiSchedulerBackend

        backend: SchedulerBackend = ApiSchedulerBackend(api_url, api_key)
        return backend
    from cronicorn.settings import Settings
    from cronicorn.store.local_backend import LocalSchedulerBackend

    settings = Settings.from_env(env)
    return LocalSchedulerBackend(
        settings.database_url, settings.secret_box(), clock=clock, prepare_schema=True
    )
