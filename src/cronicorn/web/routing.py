"""The dashboard's route class and small helpers shared by its routers.

`WebRoute` turns the errors a page can meet into pages: no session → the sign-in form (or
401 for a polled fragment), bad CSRF token or a non-admin on an admin page → 403, an unknown
or other tenant's object → 404, a state conflict → 409 with the reason, the key's request
budget spent → 429 with `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from cronicorn.errors import ConflictError, NotFoundError
from cronicorn.service.throttle import Throttled
from cronicorn.web.render import page, secure
from cronicorn.web.session import AdminOnly, CsrfRefused, SignInRequired

FRAGMENT_HEADER = "x-fragment"

NOTICES = {
    "created": "Job created.",
    "saved": "Changes saved.",
    "run-now": "Run requested: the job is due now and runs within moments.",
    "paused": "Job paused: it will not run until resumed.",
    "resumed": "Job resumed.",
    "archived": "Job archived.",
    "note": "Note added: the AI reads it on the next run.",
    "endpoint-added": "Endpoint added.",
    "endpoint-saved": "Endpoint saved.",
    "endpoint-deleted": "Endpoint deleted.",
    "revoked": "Key revoked: its sessions have ended.",
    "signed-out": "You are signed out.",
}


def notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))


def see_other(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    secure(response)
    return response


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return page(request, "error.html", {"title": title, "message": message}, status)


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.headers.get(FRAGMENT_HEADER) or request.method != "GET":
                    return error_page(request, 401, "Signed out", "Please sign in again.")
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return see_other("/?next=" + quote(target, safe=""))
            except CsrfRefused:
                return error_page(
                    request,
                    403,
                    "Request refused",
                    "The form was missing its security token or your session has ended. "
                    "Reload the page and try again.",
                )
            except AdminOnly:
                return error_page(request, 403, "Admins only", "This page needs an admin key.")
            except NotFoundError as exc:
                return error_page(request, 404, "Not found", str(exc))
            except ConflictError as exc:
                return error_page(request, 409, "Not possible right now", str(exc))
            except Throttled as exc:
                reason = str(exc)
                message = f"{reason[:1].upper()}{reason[1:]}. Try again in {exc.retry_after_s} s."
                response = error_page(request, 429, "Too many requests", message)
                response.headers["Retry-After"] = str(exc.retry_after_s)
                return response

        return guarded
