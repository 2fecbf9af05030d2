"""Map domain and service errors to HTTP responses (SPEC §3 error statuses).

Validation details never echo the submitted input: it may contain secrets.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronicorn.errors import BackendUnavailableError, ConflictError, NotFoundError
from cronicorn.service.errors import FieldErrors
from cronicorn.service.throttle import Throttled

log = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    detail: str


class FieldErrorOut(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    detail: list[FieldErrorOut]


def field_error(err: Any) -> dict[str, Any]:
    loc = [part if isinstance(part, int) else str(part) for part in err.get("loc", ())]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "json_invalid":
        reason = (err.get("ctx") or {}).get("error", "")
        return {
            "loc": loc,
            "msg": f"request body is not valid JSON (at character {loc[-1]}): {reason}",
            "type": "json_invalid",
        }
    field = next((p for p in reversed(loc) if isinstance(p, str)), None)
    if field and field not in ("body", "query", "path") and field not in msg:
        msg = f"{field}: {msg}"
    return {"loc": loc, "msg": msg, "type": str(err.get("type", "value_error"))}


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [field_error(e) for e in exc.errors()]}, status_code=422)


async def _field_errors(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldErrors)
    detail = [
        {
            "loc": [exc.location, name],
            "msg": msg if name in msg else f"{name}: {msg}",
            "type": "value_error",
        }
        for name, msg in exc.fields
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI answers an undecodable body (e.g. not UTF-8) with a bare 400; the contract
    says malformed JSON is a 422 naming the body, so say that instead."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        detail = [
            {"loc": ["body"], "msg": "request body is not valid UTF-8 JSON", "type": "json_invalid"}
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    return await http_exception_handler(request, exc)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _throttled(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Throttled)
    return JSONResponse(
        {"detail": str(exc)},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("backend unavailable: %s", exc)
    return JSONResponse({"detail": "service unavailable"}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(FieldErrors, _field_errors)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(ConflictError, _conflict)  # LeaseLostError too (a subclass)
    app.add_exception_handler(BackendUnavailableError, _unavailable)
    app.add_exception_handler(Throttled, _throttled)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route can return."""
    descriptions = {
        401: "Missing or invalid API key",
        403: "The key's scope does not allow this route",
        404: "Not found (or belongs to another tenant)",
        409: "Conflict with the current state (lease lost, archived job)",
        413: "Request body over the size limit",
        422: "Validation failed; each detail names its field",
        429: "Throttled (failed authentications or the key's request budget); see Retry-After",
        503: "Database unavailable",
    }
    out: dict[int | str, dict[str, Any]] = {}
    if 401 in codes:  # every authenticated route may be throttled
        codes = (*codes, 429)
    for code in codes:
        model = ValidationErrorOut if code == 422 else ErrorOut
        out[code] = {"model": model, "description": descriptions[code]}
    return out
