"""Composition for CLI processes: which backend, which planner, one `SchedulingEngine`.

The engine reaches the store through the API when `CRONICORN_API_URL` is set (with an engine
or admin key in `CRONICORN_API_KEY`), else in-process on `CRONICORN_DATABASE_URL`, which is
migrated to the current schema first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cronicorn.cli.common import EXIT_USAGE, CliError
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.factory import API_KEY_ENV, API_URL_ENV, create_scheduling_engine
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.settings import Settings
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.migrate import prepare_schema

log = logging.getLogger("cronicorn.cli")


@dataclass(frozen=True, slots=True)
class ApiTarget:
    """Where the API is and the key to use; None from `api_target()` means in-process."""

    url: str
    key: str


def api_target(environ: Mapping[str, str] | None = None) -> ApiTarget | None:
    """The API to talk to, from the environment; a URL without a key is a usage error."""
    env = os.environ if environ is None else environ
    url = env.get(API_URL_ENV, "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{API_URL_ENV}: must be an http(s) URL (got {url!r})", EXIT_USAGE)
    key = env.get(API_KEY_ENV, "").strip()
    if not key:
        raise CliError(f"{API_KEY_ENV}: required when {API_URL_ENV} is set", EXIT_USAGE)
    return ApiTarget(url.rstrip("/"), key)


def has_ai_key(config: EngineConfig) -> bool:
    key = config.ai_agent.api_key
    return key is not None and bool(key.get_secret_value())


async def open_local_backend(settings: Settings, **kwargs: Any) -> LocalSchedulerBackend:
    """Prepare the schema (SQLite: migrated; PostgreSQL: checked, see `prepare_schema`), then
    open the in-process backend."""
    await prepare_schema(settings.database_url)
    return LocalSchedulerBackend(settings.database_url, settings.secret_box(), **kwargs)


def open_api_backend(target: ApiTarget) -> SchedulerBackend:
    from cronicorn.client import ApiSchedulerBackend

    backend: SchedulerBackend = ApiSchedulerBackend(target.url, target.key)
    return backend


async def open_backend(environ: Mapping[str, str] | None = None) -> SchedulerBackend:
    """The engine's backend for this environment (API if configured, else the database)."""
    target = api_target(environ)
    if target is not None:
        return open_api_backend(target)
    return await open_local_backend(Settings.from_env(environ))


def build_engine(
    config: EngineConfig, backend: SchedulerBackend, *, worker_id: str | None = None
) -> SchedulingEngine:
    """One engine on `backend` with the planner (AI when a key is configured, else rules) and
    executor built from `config`. The engine closes those on `stop()`; the caller still owns
    `backend` and closes it after the engine stopped (its last heartbeat goes through it)."""
    return create_scheduling_engine(config, backend=backend, worker_id=worker_id)
