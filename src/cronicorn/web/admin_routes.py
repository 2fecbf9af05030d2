"""Workers (every signed-in user; job counts limited to what the key may see) and API keys
(admin keys only: create, shown once, and revoke)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.api.deps import key_cache
from cronicorn.engine.config import SchedulerConfig
from cronicorn.observability.status import STAT_COLUMNS
from cronicorn.service.schemas import KeyCreate
from cronicorn.web import forms
from cronicorn.web.forms import FormInvalid
from cronicorn.web.render import page
from cronicorn.web.routing import WebRoute, notice, see_other
from cronicorn.web.session import AdminAction, AdminPage, Page, Viewer, services_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)
HEARTBEAT_INTERVAL_S = SchedulerConfig().heartbeat_interval_ms / 1000
"""The engines' default heartbeat: a worker is live within three of these."""


async def _workers_context(request: Request, user: Viewer) -> dict[str, Any]:
    report = await services_of(request).dashboard.worker_report(
        user.principal, HEARTBEAT_INTERVAL_S
    )
    return {"user": user, "report": report, "stat_columns": STAT_COLUMNS}


@router.get("/workers")
async def workers(request: Request, user: Page) -> Response:
    return page(request, "workers.html", await _workers_context(request, user))


@router.get("/workers/live")
async def workers_live(request: Request, user: Page) -> Response:
    return page(request, "_workers_body.html", await _workers_context(request, user))


async def _keys(request: Request, user: Viewer, status_code: int = 200, **extra: Any) -> Response:
    context = {
        "user": user,
        "keys": await services_of(request).keys.list(),
        "notice": notice(request),
        "created": None,
        "errors": {},
        "values": {},
        **extra,
    }
    return page(request, "keys.html", context, status_code)


@router.get("/keys")
async def keys(request: Request, user: AdminPage) -> Response:
    return await _keys(request, user)


@router.post("/keys")
async def create_key(request: Request, user: AdminAction) -> Response:
    try:
        data = forms.build(
            KeyCreate,
            {"tenant": user.form.get("tenant", "").strip(), "scope": user.form.get("scope", "")},
        )
    except FormInvalid as exc:
        return await _keys(request, user, 422, errors=exc.errors, values=user.form)
    created = await services_of(request).keys.create(data.tenant, data.scope)
    return await _keys(request, user, created=created)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, user: AdminAction) -> Response:
    await services_of(request).keys.revoke(key_id)
    key_cache(request).clear()  # the API stops accepting it at once, like the REST route
    return see_other("/keys?done=revoked")
