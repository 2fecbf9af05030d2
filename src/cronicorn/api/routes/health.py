"""Liveness, readiness and Prometheus metrics (no authentication, no tenant data)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
READY_TIMEOUT_S = 5.0


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    detail: str | None = None


@router.get("/health", response_model=HealthOut)
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def ready(request: Request) -> Any:
    """Readiness: the database answers (and its schema is current, when that is checkable)."""
    state = request.app.state
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with state.db.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            problem = await state.schema_problem() if state.schema_problem else None
    except Exception as exc:
        log.warning("readiness check failed: %s", exc)
        return JSONResponse(
            ReadyOut(status="unavailable", detail="database unreachable").model_dump(),
            status_code=503,
        )
    if problem:
        return JSONResponse(
            ReadyOut(status="unavailable", detail=problem).model_dump(), status_code=503
        )
    return ReadyOut(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: this app's API metrics (and any registry added with
    `add_metrics_registry`, e.g. the all-in-one engine's) plus the process-wide registry."""
    registries = [*request.app.state.metrics_registries, REGISTRY]
    body = b"".join(generate_latest(registry) for registry in registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
