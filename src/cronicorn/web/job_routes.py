"""Jobs, a job, its endpoints and notes, and runs: pages, polled fragments, actions.

Routes are thin: parse the form (`web.forms`), call a service, redirect with a notice or
re-render the page with the service's own validation messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.domain.models import JobStatus
from cronicorn.errors import ConflictError
from cronicorn.service.errors import FieldErrors
from cronicorn.service.schemas import MessageCreate
from cronicorn.web import forms
from cronicorn.web.forms import FormInvalid
from cronicorn.web.render import page
from cronicorn.web.routing import WebRoute, notice, see_other
from cronicorn.web.session import Action, Page, Viewer, services_of
from cronicorn.web.views import JOBS_SHOWN, job_page, run_page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
STATUSES = ("active", "paused", "archived")


def _filters(request: Request) -> tuple[str, JobStatus | None]:
    search = request.query_params.get("q", "")[:200]
    status = request.query_params.get("status", "")
    return search, JobStatus(status) if status in STATUSES else None


async def _jobs(request: Request, user: Viewer, status_code: int = 200, **extra: Any) -> Response:
    search, status = _filters(request)
    rows = await services_of(request).dashboard.overview(
        user.principal, search=search, status=status, limit=JOBS_SHOWN
    )
    query = urlencode({"q": search, "status": status.value if status else ""})
    context = {
        "user": user,
        "rows": rows,
        "jobs_shown": JOBS_SHOWN,
        "search": search,
        "status": status.value if status else "",
        "statuses": STATUSES,
        "query": query,
        "notice": notice(request),
        "errors": {},
        "values": {},
        **extra,
    }
    return page(request, "jobs.html", context, status_code)


@router.get("/jobs")
async def jobs(request: Request, user: Page) -> Response:
    return await _jobs(request, user)


@router.get("/jobs/table")
async def jobs_table(request: Request, user: Page) -> Response:
    search, status = _filters(request)
    rows = await services_of(request).dashboard.overview(
        user.principal, search=search, status=status, limit=JOBS_SHOWN
    )
    context = {"rows": rows, "user": user, "jobs_shown": JOBS_SHOWN}
    return page(request, "_jobs_table.html", context)


@router.post("/jobs")
async def create_job(request: Request, user: Action) -> Response:
    try:
        job = await services_of(request).jobs.create(user.principal, forms.job_create(user.form))
    except FormInvalid as exc:
        return await _jobs(request, user, 422, errors=exc.errors, values=user.form, open_new=True)
    return see_other(f"/jobs/{job.id}?done=created")


async def _job(
    request: Request, user: Viewer, job_id: str, status_code: int = 200, **extra: Any
) -> Response:
    before = request.query_params.get("before") or None
    view = await job_page(services_of(request), user.principal, job_id, before)
    context: dict[str, Any] = {
        "user": user,
        "view": view,
        "job": view.job,
        "notice": notice(request),
        "error": None,
        "errors": {},
        "values": {},
        "open": "",
        **extra,
    }
    return page(request, "job.html", context, status_code)


@router.get("/jobs/{job_id}")
async def job(request: Request, job_id: str, user: Page) -> Response:
    return await _job(request, user, job_id)


@router.get("/jobs/{job_id}/live")
async def job_live(request: Request, job_id: str, user: Page) -> Response:
    view = await job_page(services_of(request), user.principal, job_id)
    return page(request, "_job_live.html", {"view": view, "job": view.job, "user": user})


async def _form_action(
    request: Request,
    user: Viewer,
    job_id: str,
    section: str,
    action: Callable[[], Awaitable[None]],
    done: str,
) -> Response:
    """Run `action()`; on bad input re-render the job page with the form `section` open."""
    try:
        await action()
    except FormInvalid as exc:
        return await _job(
            request, user, job_id, 422, errors=exc.errors, values=user.form, open=section
        )
    except FieldErrors as exc:
        invalid = forms.from_field_errors(exc)
        return await _job(
            request, user, job_id, 422, errors=invalid.errors, values=user.form, open=section
        )
    except ConflictError as exc:
        return await _job(request, user, job_id, 409, error=str(exc))
    return see_other(f"/jobs/{job_id}?done={done}")


@router.post("/jobs/{job_id}/edit")
async def edit_job(request: Request, job_id: str, user: Action) -> Response:
    async def action() -> None:
        await services_of(request).jobs.update(user.principal, job_id, forms.job_update(user.form))

    return await _form_action(request, user, job_id, "edit", action, "saved")


@router.post("/jobs/{job_id}/messages")
async def add_note(request: Request, job_id: str, user: Action) -> Response:
    async def action() -> None:
        note = forms.build(MessageCreate, {"content": user.form.get("content", "").strip()})
        await services_of(request).history.post_message(user.principal, job_id, note)

    return await _form_action(request, user, job_id, "note", action, "note")


@router.post("/jobs/{job_id}/endpoints")
async def add_endpoint(request: Request, job_id: str, user: Action) -> Response:
    async def action() -> None:
        data = forms.endpoint_create(user.form)
        await services_of(request).endpoints.create(user.principal, job_id, data)

    return await _form_action(request, user, job_id, "endpoint-new", action, "endpoint-added")


@router.post("/endpoints/{endpoint_id}/edit")
async def edit_endpoint(request: Request, endpoint_id: str, user: Action) -> Response:
    endpoints = services_of(request).endpoints
    current = await endpoints.get(user.principal, endpoint_id)

    async def action() -> None:
        await endpoints.update(user.principal, endpoint_id, forms.endpoint_update(user.form))

    section = f"endpoint-{endpoint_id}"
    return await _form_action(request, user, current.job_id, section, action, "endpoint-saved")


@router.post("/endpoints/{endpoint_id}/delete")
async def delete_endpoint(request: Request, endpoint_id: str, user: Action) -> Response:
    endpoints = services_of(request).endpoints
    current = await endpoints.get(user.principal, endpoint_id)

    async def action() -> None:
        await endpoints.delete(user.principal, endpoint_id)

    return await _form_action(request, user, current.job_id, "", action, "endpoint-deleted")


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: str, user: Page) -> Response:
    view = await run_page(services_of(request), user.principal, run_id)
    return page(request, "run.html", {"user": user, "view": view, "run": view.run})


@router.get("/runs/{run_id}/live")
async def run_live(request: Request, run_id: str, user: Page) -> Response:
    view = await run_page(services_of(request), user.principal, run_id)
    return page(request, "_run_body.html", {"user": user, "view": view, "run": view.run})


# Last: the catch-all verb route must not shadow /messages and /endpoints.
@router.post("/jobs/{job_id}/{verb}")
async def job_verb(request: Request, job_id: str, verb: str, user: Action) -> Response:
    jobs = services_of(request).jobs
    verbs = {
        "run-now": jobs.run_now,
        "pause": jobs.pause,
        "resume": jobs.resume,
        "archive": jobs.archive,
    }
    done = {"run-now": "run-now", "pause": "paused", "resume": "resumed", "archive": "archived"}
    if verb not in verbs:
        return page(request, "error.html", {"title": "Not found", "message": verb}, 404)

    async def action() -> None:
        await verbs[verb](user.principal, job_id)

    return await _form_action(request, user, job_id, "", action, done[verb])
