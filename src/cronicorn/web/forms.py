"""HTML form fields → the API's input models, with the API's validation messages.

A form posts strings; the API's models are strict on types. Blank optional fields are left
out (create) or cleared (update, where the field is nullable); whole numbers become ints and
anything else is passed on as given, so the model reports it with the same message a JSON
client would get.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cronicorn.api.errors import field_error
from cronicorn.service.errors import FieldErrors
from cronicorn.service.schemas import EndpointCreate, EndpointUpdate, JobCreate, JobUpdate

M = TypeVar("M", bound=BaseModel)
GENERAL = ""
"""Key of messages that belong to no single field."""
_INT = re.compile(r"^-?\d{1,19}$")


class FormInvalid(Exception):
    """Field name → messages, shown next to each field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


def _add(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def from_validation(exc: ValidationError) -> FormInvalid:
    errors: dict[str, list[str]] = {}
    for err in exc.errors():
        detail = field_error(err)
        names = [part for part in detail["loc"] if isinstance(part, str)]
        _add(errors, names[0] if names else GENERAL, detail["msg"])
    return FormInvalid(errors)


def from_field_errors(exc: FieldErrors) -> FormInvalid:
    errors: dict[str, list[str]] = {}
    for name, msg in exc.fields:
        _add(errors, name, msg if name in msg else f"{name}: {msg}")
    return FormInvalid(errors)


def build(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise from_validation(exc) from None


def _number(text: str) -> int | str:
    return int(text) if _INT.match(text) else text


def _numbers(
    form: Mapping[str, str], names: Iterable[str], *, blank_is_null: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        text = form.get(name, "").strip()
        if text:
            out[name] = _number(text)
        elif blank_is_null and name in form:
            out[name] = None
    return out


def _texts(form: Mapping[str, str], names: Iterable[str]) -> dict[str, Any]:
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}


def job_create(form: Mapping[str, str]) -> JobCreate:
    data = {
        **_texts(form, ("name", "definition", "cron", "timezone")),
        **_numbers(form, ("interval_ms",), blank_is_null=False),
    }
    if form.get("start_paused"):
        data["status"] = "paused"
    return build(JobCreate, data)


def job_update(form: Mapping[str, str]) -> JobUpdate:
    data: dict[str, Any] = {
        name: form.get(name, "").strip() for name in ("name", "definition") if name in form
    }
    for name in ("cron", "timezone"):
        if name in form:
            text = form[name].strip()
            if text or name == "cron":
                data[name] = text or None
    data.update(_numbers(form, ("interval_ms", "daily_token_budget"), blank_is_null=True))
    data.update(_numbers(form, ("min_interval_ms", "max_interval_ms"), blank_is_null=False))
    return build(JobUpdate, data)


def parse_headers(text: str) -> dict[str, str]:
    """`Name: value` per line; blank lines are skipped."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FormInvalid({"headers": [f"headers: line {number} is not `Name: value`"]})
        headers[name.strip()] = value.strip()
    return headers


def _endpoint_common(form: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        **_texts(form, ("name", "url", "method")),
        **_numbers(form, ("timeout_ms",), blank_is_null=False),
        "description": form.get("description", "").strip(),
        "fire_and_forget": bool(form.get("fire_and_forget")),
        "headers": parse_headers(form.get("headers", "")),
    }
    body = form.get("body", "").strip()
    if body:
        try:
            data["body"] = json.loads(body)
        except ValueError as exc:
            raise FormInvalid({"body": [f"body: not valid JSON ({exc})"]}) from None
    return data


def endpoint_create(form: Mapping[str, str]) -> EndpointCreate:
    data = _endpoint_common(form)
    token = form.get("bearer_token", "").strip()
    if token:
        data["bearer_token"] = token
    return build(EndpointCreate, data)


def endpoint_update(form: Mapping[str, str]) -> EndpointUpdate:
    """The bearer token is kept when its field is left blank, cleared when asked."""
    data = _endpoint_common(form)
    if "body" not in data:
        data["body"] = None
    token = form.get("bearer_token", "").strip()
    if form.get("clear_bearer_token"):
        data["bearer_token"] = None
    elif token:
        data["bearer_token"] = token
    return build(EndpointUpdate, data)
