"""The FastAPI application factory: `create_app(settings)`.

Composition happens here: database engine, secret box, services, the scheduler backend for
the engine routes, middleware (metrics, 1 MiB body limit) and error handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.alerting.dispatcher import AlertDispatcher
from cronicorn.api.errors import install_error_handlers
from cronicorn.api.middleware import BodyLimitMiddleware
from cronicorn.api.routes import (
    ai,
    alerts,
    endpoints,
    health,
    history,
    jobs,
    keys,
    scheduler,
    signing,
    tenants,
)
from cronicorn.observability import ApiMetrics, MetricsMiddleware
from cronicorn.runtime.heap import freeze_startup_heap
from cronicorn.service import Services
from cronicorn.service.throttle import Throttle
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.migrate import check_migrations_current
from cronicorn.store.rate_limits import RateLimitStore
from cronicorn.store.retention import run_pruner
from cronicorn.web.app import install_dashboard

DESCRIPTION = """AI-driven HTTP job scheduler.

Authenticate with `Authorization: Bearer <key>`. Scopes: `user` (own tenant), `engine`
(scheduler routes), `admin` (everything). Another tenant's object is a 404.
"""


def create_server_app() -> FastAPI:
    """`create_app` for `cronicorn serve --workers N` (uvicorn's factory in each process):
    settings from the environment, start-up heap frozen."""
    return create_app(freeze_heap=True)


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """Build the API. The database engine is opened on startup and disposed on shutdown.

    `freeze_heap`: once started, freeze the process's start-up heap out of the garbage
    collector's full passes (`cronicorn.runtime.heap`); for a process that serves only this
    app (`cronicorn serve`), not for an app embedded in someone else's process."""
    settings = settings or Settings.from_env()
    from cronicorn.mcp.http import McpEndpoint  # here: it imports the route modules

    registry = CollectorRegistry()
    mcp = McpEndpoint()  # the MCP tools over streamable HTTP at /mcp

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url)
        box = settings.secret_box()
        app.state.db = db
        app.state.services = Services.build(
            session_factory(db),
            box,
            alert_settings=settings.alerts,
            quotas=settings.quotas,
            default_budget_usd=settings.tenant_monthly_budget_usd,
        )
        app.state.throttle = Throttle(RateLimitStore(db), settings.rate_limits)
        app.state.scheduler = LocalSchedulerBackend(db, box)
        app.state.schema_problem = partial(_schema_problem, db)
        pruner = _start_pruner(db, settings)
        # Alerts queued by run completions are sent from here (docs/alerts.md).
        app.state.alerts = AlertDispatcher(db, box, settings.alerts)
        if settings.alert_dispatch:
            app.state.alerts.start()
        try:
            async with mcp.running(app):
                if freeze_heap:
                    freeze_startup_heap()
                yield
        finally:
            if pruner is not None:
                pruner.cancel()
                with suppress(asyncio.CancelledError):
                    await pruner
            await app.state.alerts.stop()
            await app.state.scheduler.close()
            await db.dispose()

    app = FastAPI(
        title="Cronicorn",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Starlette's slash redirect builds an absolute URL from the request's Host header,
        # so `GET /api/jobs/` with `Host: evil.example` pointed clients elsewhere: off.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.metrics_registries = [registry]
    install_error_handlers(app)
    for module in (health, jobs, endpoints, history, ai, scheduler, keys, signing, alerts, tenants):
        app.include_router(module.router)
    mcp.mount(app)
    install_dashboard(app)  # the web dashboard at / (after the API: /api routes win)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=ApiMetrics(registry))
    return app


def add_metrics_registry(app: FastAPI, registry: CollectorRegistry) -> None:
    """Render `registry` on this app's /metrics too, after the API's own metrics: the
    all-in-one process shows its in-process engine's metrics on the one /metrics it serves."""
    app.state.metrics_registries.append(registry)


def _start_pruner(db: AsyncEngine, settings: Settings) -> asyncio.Task[None] | None:
    """History retention runs beside the API: small paced batches on its own PostgreSQL
    connection (see store/retention.py)."""
    if settings.prune_interval_ms <= 0:
        return None
    return asyncio.create_task(
        run_pruner(
            db,
            settings.retention,
            settings.prune_interval_ms / 1000,
            duty_percent=settings.prune_duty_percent,
        ),
        name="cronicorn-pruner",
    )


async def _schema_problem(db: AsyncEngine) -> str | None:
    """For /ready: None when the schema is at the latest migration."""
    if await check_migrations_current(db):
        return None
    return "database schema is not at the latest migration: run `cronicorn db upgrade`"
