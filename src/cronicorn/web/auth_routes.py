"""Sign-in (`/`), sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cronicorn.api.deps import client_address, get_throttle
from cronicorn.service.throttle import Throttled
from cronicorn.service.web_sessions import ScopeRefused, SignInRefused
from cronicorn.web.render import page
from cronicorn.web.routing import WebRoute, error_page, notice, see_other
from cronicorn.web.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Action,
    new_signin_token,
    services_of,
    set_cookie,
    tokens_match,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only local paths (never `//host` or a scheme): no open redirect."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/jobs"


def _signin_form(
    request: Request, *, error: str | None = None, status: int = 200, next_url: str = ""
) -> Response:
    token = new_signin_token()
    response = page(
        request,
        "signin.html",
        {
            "signin_token": token,
            "error": error,
            "notice": notice(request),
            "next_url": next_url or request.query_params.get("next", ""),
        },
        status,
    )
    set_cookie(request, response, SIGNIN_COOKIE, token)
    return response


@router.get("/")
async def home(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and await services_of(request).web_sessions.resolve(token):
        return see_other("/jobs")
    return _signin_form(request)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str) or not tokens_match(given, request.cookies.get(SIGNIN_COOKIE)):
        return error_page(
            request, 403, "Request refused", "The sign-in form expired: reload it and try again."
        )
    key = form.get("key")
    next_url = str(form.get("next", ""))
    # The API's failed-authentication limit, per client address: refused keys on this form
    # and on the API count together (docs/api.md "Throttling").
    throttle = get_throttle(request)
    client = client_address(request)
    try:
        await throttle.check_failed_auth(client)
        token = await services_of(request).web_sessions.sign_in(key if isinstance(key, str) else "")
    except Throttled as exc:
        error = f"Sign-in refused: {exc}. Try again in {exc.retry_after_s} s."
        response = _signin_form(request, error=error, status=429, next_url=next_url)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except SignInRefused as exc:
        if not isinstance(exc, ScopeRefused):
            await throttle.record_failed_auth(client)
        return _signin_form(request, error=f"Sign-in failed: {exc}.", status=401, next_url=next_url)
    response = see_other(_safe_next(next_url))
    set_cookie(request, response, SESSION_COOKIE, token)
    response.delete_cookie(SIGNIN_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/signout")
async def sign_out(request: Request, _user: Action) -> Response:
    await services_of(request).web_sessions.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = see_other("/?done=signed-out")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
