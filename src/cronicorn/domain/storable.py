"""What the databases can store: text without NUL or lone surrogates, bounded JSON nesting.

Shared by the user-facing validation (`service/validation`) and the scheduler wire models
(`cronicorn.wire`), so a bad value is a 422 at the edge, never a 500 from the driver.
"""

from __future__ import annotations

from typing import Any

MAX_JSON_DEPTH = 32


def db_safe_text(value: str) -> str:
    """Reject what PostgreSQL or UTF-8 cannot store (NUL, lone surrogates)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def db_safe_json(value: Any, _depth: int = 0) -> Any:
    """Apply `db_safe_text` to every string (keys too) in a JSON value, bounded depth."""
    if _depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        return db_safe_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            db_safe_text(str(key))
            db_safe_json(item, _depth + 1)
    elif isinstance(value, list):
        for item in value:
            db_safe_json(item, _depth + 1)
    return value
