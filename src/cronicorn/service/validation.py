"""Field types and checks shared by the input schemas (SPEC §2 rules).

Every rule lives here once so the API (422 with field-level messages) and the CLI reject the
same input with the same words. Strings are also checked for what the databases refuse
(NUL characters, lone surrogates), so bad input is a 422 instead of a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, Field, Strict

from cronicorn.domain.cron import check_cron_expression
from cronicorn.domain.jmes import MAX_EXPRESSION_CHARS, ExpressionError, compile_expression
from cronicorn.domain.jmes import validate_view as _view_errors
from cronicorn.domain.json_schema import check_schema
from cronicorn.domain.storable import db_safe_json, db_safe_text
from cronicorn.observability.redaction import MASK

MAX_HEADERS = 50
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]{0,8192}")
"""Patterns here are used with `fullmatch` (a `$` would accept a trailing newline)."""
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def plausible_id(value: str) -> bool:
    """Ids are uuids; anything else cannot exist (and must not reach the database)."""
    return bool(_ID.fullmatch(value))


def to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def check_cron(value: str) -> str:
    """The scheduler's own check (`domain.cron`), so the API accepts exactly what runs."""
    return check_cron_expression(value)


def check_timezone(value: str) -> str:
    if not value or value.startswith(("/", ".")) or ".." in value:
        raise ValueError("must be an IANA time zone name such as 'Europe/Paris'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def check_url(value: str) -> str:
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must use http or https")
    if not parts.hostname:
        raise ValueError("must include a host")
    if port == 0:
        raise ValueError("port must be between 1 and 65535")
    return value


def check_headers(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    for name, item in value.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name[:50]!r} is not a valid HTTP token")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise ValueError(f"header {name!r} is managed by the HTTP client")
        if name.lower() in seen:
            raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(name.lower())
        if not _HEADER_VALUE.fullmatch(item):
            raise ValueError(f"value of header {name!r} contains control characters or is too long")
    return value


def check_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    """Safe (local `$ref` only, bounded size and depth) and valid; see domain/json_schema."""
    check_schema(value)
    db_safe_json(value)
    return value


def check_condition(value: str) -> str:
    db_safe_text(value)
    try:
        compile_expression(value)
    except ExpressionError as exc:
        raise ValueError(f"is not a valid JMESPath expression: {exc}") from None
    return value


def check_ai_view(value: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
    db_safe_json(value)
    errors = _view_errors(value)
    if errors:
        raise ValueError("; ".join(errors[:3]))
    return value


def keeps_mask(value: str) -> bool:
    """On PATCH, a secret given as "***" means "keep the stored value"."""
    return value == MASK


Text = Annotated[str, Strict(), AfterValidator(db_safe_text)]
Name = Annotated[str, Strict(), Field(min_length=1, max_length=200), AfterValidator(db_safe_text)]
Definition = Annotated[
    str, Strict(), Field(min_length=1, max_length=4000), AfterValidator(db_safe_text)
]
Cron = Annotated[str, Strict(), Field(max_length=200), AfterValidator(check_cron)]
TimeZone = Annotated[str, Strict(), Field(max_length=64), AfterValidator(check_timezone)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(to_utc)]
Url = Annotated[str, Strict(), Field(min_length=1, max_length=2048), AfterValidator(check_url)]
Headers = Annotated[dict[str, Annotated[str, Strict()]], AfterValidator(check_headers)]
JsonSchema = Annotated[dict[str, Any], AfterValidator(check_json_schema)]
JsonBody = Annotated[Any, AfterValidator(db_safe_json)]
Condition = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=MAX_EXPRESSION_CHARS),
    AfterValidator(check_condition),
]
_Expression = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)]
AiView = Annotated[dict[str, _Expression] | list[_Expression], AfterValidator(check_ai_view)]


def check_secret(value: str) -> str:
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError("contains control characters or is too long")
    return value


Secret = Annotated[
    str, Strict(), Field(min_length=1, max_length=8192), AfterValidator(check_secret)
]

DAY_MS = 24 * 3600 * 1000
IntervalMs = Annotated[int, Strict(), Field(ge=1000, le=366 * DAY_MS)]
TimeoutMs = Annotated[int, Strict(), Field(ge=100, le=300_000)]
