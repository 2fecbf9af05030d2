"""Secret-leak search for tests: every encoding a secret can travel in, written out
independently of the code under test (cronicorn.observability.redaction)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus


def encodings(secret: str) -> dict[str, str]:
    """name → the secret in that encoding."""
    raw = secret.encode()
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-twice": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "url": quote(secret, safe=""),
        "url-plus": quote_plus(secret),
        "url-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        "base64": base64.b64encode(raw).decode(),
        "base64-url": base64.urlsafe_b64encode(raw).decode(),
    }


def leaks(haystack: str | bytes, secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, encoding) pairs found in `haystack` (bytes are searched as UTF-8 and latin-1)."""
    texts = (
        [haystack.decode("utf-8", "replace"), haystack.decode("latin-1")]
        if isinstance(haystack, bytes)
        else [haystack]
    )
    found = []
    for secret in secrets:
        for name, form in encodings(secret).items():
            if any(form in text for text in texts):
                found.append((secret, name))
    return found
