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

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Mask `value` in every log line from now on (process-wide).

    Call it wherever a secret enters memory in clear text (decryption, config loading).
    """
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _pattern = _compile(_secrets)


def unregister_secret(value: str) -> None:
    """Forget a secret (rotated keys); mostly for tests."""
    global _pattern
    with _lock:
        _secrets.discard(value)
        _pattern = _compile(_secrets) if _secrets else None


def clear_secrets() -> None:
    """Forget every registered secret; for tests."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def _compile(values: set[str]) -> re.Pattern[str]:
    # Longest first so that a secret containing another one is masked whole.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered))


def redact_text(text: str) -> str:
    """Mask registered secrets and credential shapes in free text."""
    pattern = _pattern
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
