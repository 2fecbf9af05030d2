"""How an error answer of the REST API becomes an exception.

`ApiError` carries the API's own message (field-level for a 422), so a command or an MCP
tool can show it as one line. The scheduler backend maps its routes' errors to the engine's
exceptions instead (`LeaseLostError`, `ConfigError`, …; see `client/api_backend.py`). An API
that cannot be reached is `cronicorn.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import json
from typing import Any

from cronicorn.errors import CronicornError


class ApiError(CronicornError):
    """The API answered with an error status (`status`); the message is the API's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def api_error(status: int, payload: Any) -> ApiError:
    """The `ApiError` for an error answer whose JSON body is `payload`: the API's detail
    (field-level messages for a 422), alone for a 404, else after `API <status>: `."""
    detail = _detail(status, payload)
    return ApiError(status, detail if status == 404 else f"API {status}: {detail}")


def api_error_from_text(status: int, text: str, _body: object = None) -> ApiError:
    """`api_error` for a raw response body (not JSON, e.g. from a proxy: the status alone)."""
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    return api_error(status, payload)


def _detail(status: int, payload: Any) -> str:
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list):
        return "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict))
    if detail:
        return str(detail)
    return f"HTTP {status}"
