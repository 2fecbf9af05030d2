"""Secret masking for anything that is about to be written to a log.

Two complementary nets, because either alone leaks:

- *known values*: every secret the process decrypts (header values, bearer tokens, API keys) is
  registered with `register_secret` and masked wherever it shows up, whatever the key, message
  or traceback that carries it;
- *shapes*: `Bearer …` / `Basic …` credentials, `authorization: …`-style pairs in free text, and
  values under sensitive keys (`authorization`, `token`, `secret`, `api-key`, `password`,
  `cookie`) in structured data, even when the value was never registered.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: masking every "abc" in every line would make logs
unreadable, and a 3-character secret is not protecting anything."""

SENSITIVE_KEY = re.compile(r"authorization|token|secret|api[-_]?key|password|cookie", re.I)

_CREDENTIAL = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9\-._~+/]+=*", re.I)
_KEY_VALUE = re.compile(
    r"(?P<key>authorization|token|secret|api[-_]?key|password|passwd|cookie)"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)"
    r"(?![\d.]+(?:[\s,;}'\")\]]|$))"  # numbers (counts, fencing tokens) are not secrets
    r"(?P<value>(?:(?:Bearer|Basic|Token)\s+)?[^\s'\",;})\]]+)",
    re.I,
)

NON_SECRET_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-encoding",
        "content-language",
        "content-type",
        "pragma",
        "user-agent",
    }
)
"""Header names whose values describe the request, never authorise it: their values
(`application/json`, `gzip`) are not registered, so they stay readable in every line."""

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_dirty = False
"""Registration only marks the pattern stale; it is rebuilt on the next redaction, so a
claim that decrypts thousands of secrets compiles it once, not once per secret."""


def register_secret(value: str | None) -> None:
    """Mask `value` in every log line from now on (process-wide).

    Call it wherever a secret enters memory in clear text (decryption, config loading).
    Cheap when `value` is already known (the common case: every claim decrypts again).
    """
    global _dirty
    if not value or len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _lock:
        _secrets.add(value)
        _dirty = True


def register_header_secrets(headers: Mapping[str, str] | None) -> None:
    """Register the values of `headers`, except those of `NON_SECRET_HEADERS`."""
    for name, value in (headers or {}).items():
        if name.lower() not in NON_SECRET_HEADERS:
            register_secret(value)


def clear_secrets() -> None:
    """Forget every registered secret; for tests."""
    global _dirty
    with _lock:
        _secrets.clear()
        _dirty = True


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _dirty
    if not _dirty:
        return _pattern
    with _lock:
        if _dirty:
            _pattern = _compile(_secrets) if _secrets else None
            _dirty = False
        return _pattern


def _compile(values: set[str]) -> re.Pattern[str]:
    # Longest first so that a secret containing another one is masked whole.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered))


def redact_text(text: str) -> str:
    """Mask registered secrets and credential shapes in free text."""
    pattern = _current_pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)


def redact(value: Any, *, sensitive: bool = False, _depth: int = 0) -> Any:
    """A copy of `value` safe to log: values under sensitive keys masked (nested containers
    too), every other string run through `redact_text`. Numbers are kept even under sensitive
    keys: `input_tokens=5` is a count, not a secret."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if _depth > 20:
        return MASK
    if isinstance(value, Mapping):
        return {
            str(k): redact(
                v, sensitive=sensitive or bool(SENSITIVE_KEY.search(str(k))), _depth=_depth + 1
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, sensitive=sensitive, _depth=_depth + 1) for v in value]
    if sensitive:
        return MASK
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return redact_text(value if isinstance(value, str) else str(value))
