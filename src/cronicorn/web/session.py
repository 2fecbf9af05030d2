"""The dashboard session cookie and CSRF protection.

The session cookie is opaque (a random token, stored hashed), `HttpOnly`, `SameSite=Strict`
and `Secure` over https. Every POST must carry the session's synchronizer token in the form
field `csrf_token`; the sign-in form, which has no session yet, uses a double-submit token
(cookie + field). A POST without a matching token is refused with 403 before anything runs.

A session acts as its key, so every page, fragment and form post of a live session spends
one unit of that key's request budget (`Throttle.spend`, shared with the key's API calls);
over budget, `Throttled` becomes a 429 page with `Retry-After` (see routing.py).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from cronicorn.api.deps import get_throttle
from cronicorn.domain.models import Scope
from cronicorn.service import Principal, Services
from cronicorn.service.web_sessions import OpenSession

SESSION_COOKIE = "cronicorn_session"
SIGNIN_COOKIE = "cronicorn_signin"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No live session: pages redirect to the sign-in form, fragments answer 401."""


class CsrfRefused(Exception):
    """A state-changing request without a valid CSRF token (answered with 403)."""


class AdminOnly(Exception):
    """A page for admin keys only (answered with 403)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in session a request acts for, and the form fields it posted (POST)."""

    principal: Principal
    csrf_token: str
    form: dict[str, str]

    @property
    def is_admin(self) -> bool:
        return self.principal.scope is Scope.ADMIN


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/",
    )


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


async def _open_session(request: Request) -> OpenSession | None:
    """The live session of the request's cookie, its request counted against the key's
    budget (raises `Throttled` once spent)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    session = await services_of(request).web_sessions.resolve(token) if token else None
    if session is not None:
        await get_throttle(request).spend(session.principal)
    return session


async def viewer(request: Request) -> Viewer:
    """GET pages: the signed-in session, or SignInRequired."""
    session = await _open_session(request)
    if session is None:
        raise SignInRequired
    return Viewer(session.principal, session.csrf_token, {})


async def poster(request: Request) -> Viewer:
    """POST actions: the session and its form, refused (403) unless the CSRF token matches."""
    form = await _form(request)
    session = await _open_session(request)
    if session is None or not tokens_match(form.get(CSRF_FIELD), session.csrf_token):
        raise CsrfRefused
    return Viewer(session.principal, session.csrf_token, form)


async def admin_viewer(user: Annotated[Viewer, Depends(viewer)]) -> Viewer:
    if not user.is_admin:
        raise AdminOnly
    return user


async def admin_poster(user: Annotated[Viewer, Depends(poster)]) -> Viewer:
    if not user.is_admin:
        raise AdminOnly
    return user


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return {}
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


Page = Annotated[Viewer, Depends(viewer)]
Action = Annotated[Viewer, Depends(poster)]
AdminPage = Annotated[Viewer, Depends(admin_viewer)]
AdminAction = Annotated[Viewer, Depends(admin_poster)]
