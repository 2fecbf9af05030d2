"""Template rendering with autoescaping and the dashboard's security headers.

Every page and fragment goes through `page()`: Jinja2 autoescapes every value (user and
target strings included), and the Content-Security-Policy allows only this origin's own
scripts and styles, so no inline script or style attribute would run even if one slipped in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from cronicorn.web.format import FILTERS
from cronicorn.web.timeline import group_of

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=PackageLoader("cronicorn.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # templates ship in the package: no stat() per render
)
_env.filters.update(FILTERS)
_env.filters["source_group"] = group_of


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render `template` with `context` plus `request` and `now`."""
    html = _env.get_template(template).render(request=request, now=datetime.now(UTC), **context)
    response = HTMLResponse(html, status_code=status_code)
    secure(response)
    return response
