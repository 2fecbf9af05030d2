"""Response signatures: what an endpoint returned, reduced to what matters for a decision.

An AI decision is reused until what the endpoints return changes *materially* against the
responses it was made on. A signature keeps:

- the status class (`2xx`, `5xx`, or the error category when no response came back) and
  whether the call succeeded;
- the JSON shape (every key path with its type; arrays as `[]`);
- numbers outside arrays, and each array's length, compared with a relative threshold;
- label-like strings outside arrays (short, not noise) compared exactly, and within arrays
  the count of each label value (e.g. `orders[].state=pending` → 17), compared as numbers;
- for text bodies, a digest of the text with digit runs masked;
- the results of the endpoint's `ai_view` (numbers with the threshold, others exactly).

Noise does not count: keys that name times, ids, request/trace ids, nonces, versions or
sequence numbers are skipped, as are strings that look like timestamps, UUIDs or hex digests
and numbers in the range of epoch timestamps.

Pure and JSON-serialisable (signatures are stored with the decision).
"""

from __future__ import annotations

__all__ = ["ResponseSignature", "is_noise", "response_signature", "signature_change"]

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cronicorn.domain.models import EndpointResult, EndpointStatus, JsonValue, ResponseSignature

DEFAULT_CHANGE_THRESHOLD = 0.2
ABSOLUTE_FLOOR = 1.0
"""Numeric changes of at most this much never count (a counter moving 0 → 1 is noise)."""
MAX_LABEL_CHARS = 40
MAX_DEPTH = 8
MAX_ENTRIES = 400
"""Most numbers/labels/shape paths kept per signature (bounded storage)."""

_NOISE_KEY = re.compile(
    r"(time|date|_at$|^at$|^ts$|stamp|^id$|_id$|ids$|uuid|guid|nonce|etag|request|trace|"
    r"span|version|^rev$|seq|uptime|elapsed|duration|latency|took|cursor|token|signature|"
    r"hash|checksum|^now$|random|salt)",
    re.IGNORECASE,
)
_NOISE_TEXT = re.compile(
    r"^(\d{4}-\d{2}-\d{2}([T ][\d:.]+)?(Z|[+-]\d{2}:?\d{2})?|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})$",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d+")
EPOCH_RANGE = (1e9, 1e13)
"""Numbers in this range look like epoch seconds or milliseconds: not compared."""


def response_signature(
    result: EndpointResult, view: Mapping[str, JsonValue] | None = None
) -> ResponseSignature:
    """The signature of one endpoint result (and its `ai_view` values, if any)."""
    ok = result.status is EndpointStatus.SUCCESS
    if result.status_code is not None:
        status_class = f"{result.status_code // 100}xx"
    elif result.error_category is not None:
        status_class = result.error_category.value
    else:
        status_class = result.status.value
    walker = _Walker()
    body = result.response_body
    digest = None
    if isinstance(body, str):
        digest = _digest(_DIGITS.sub("#", body.strip()))
    elif body is not None:
        walker.walk(body, "", 0)
    for name, value in (view or {}).items():
        walker.walk(value, f"view.{name}", 0, in_array=False, force=True)
    return ResponseSignature(
        status_class=status_class,
        ok=ok,
        shape=tuple(sorted(walker.shape))[:MAX_ENTRIES],
        numbers=dict(list(walker.numbers.items())[:MAX_ENTRIES]),
        labels=dict(list(walker.labels.items())[:MAX_ENTRIES]),
        text_digest=digest,
    )


def signature_change(
    old: ResponseSignature, new: ResponseSignature, threshold: float = DEFAULT_CHANGE_THRESHOLD
) -> str | None:
    """A short description of the first material difference, or None if there is none."""
    if old.ok != new.ok:
        return "succeeded again" if new.ok else "started failing"
    if old.status_class != new.status_class:
        return f"status {old.status_class} → {new.status_class}"
    if old.shape != new.shape:
        added = sorted(set(new.shape) - set(old.shape))
        removed = sorted(set(old.shape) - set(new.shape))
        detail = ", ".join([*(f"+{p}" for p in added[:3]), *(f"-{p}" for p in removed[:3])])
        return f"shape changed ({detail})"
    if old.text_digest != new.text_digest:
        return "text changed"
    for path in sorted(set(old.labels) | set(new.labels)):
        if old.labels.get(path) != new.labels.get(path):
            return f"{path}: {old.labels.get(path)!r} → {new.labels.get(path)!r}"
    for path in sorted(set(old.numbers) | set(new.numbers)):
        a, b = old.numbers.get(path), new.numbers.get(path)
        if a is None or b is None:
            if (a or 0.0) != (b or 0.0) and abs((a or 0.0) - (b or 0.0)) > ABSOLUTE_FLOOR:
                return f"{path}: {_fmt(a)} → {_fmt(b)}"
            continue
        if _material(a, b, threshold):
            return f"{path}: {_fmt(a)} → {_fmt(b)}"
    return None


def _material(a: float, b: float, threshold: float) -> bool:
    diff = abs(a - b)
    return diff > ABSOLUTE_FLOOR and diff > threshold * max(abs(a), abs(b))


class _Walker:
    def __init__(self) -> None:
        self.shape: set[str] = set()
        self.numbers: dict[str, float] = {}
        self.labels: dict[str, str] = {}

    def walk(
        self, value: Any, path: str, depth: int, *, in_array: bool = False, force: bool = False
    ) -> None:
        if depth > MAX_DEPTH or len(self.shape) > MAX_ENTRIES:
            return
        name = path or "$"
        if isinstance(value, Mapping):
            self.shape.add(f"{name}:object")
            for key, item in value.items():
                key = str(key)
                if _NOISE_KEY.search(key) and not force:
                    continue
                self.walk(item, f"{path}.{key}" if path else key, depth + 1, in_array=in_array)
        elif isinstance(value, list | tuple):
            self.shape.add(f"{name}:array")
            if not in_array:
                self.numbers[f"len({name})"] = float(len(value))
            counts: dict[str, int] = {}
            for item in value:
                if isinstance(item, Mapping):
                    for key, v in item.items():
                        if isinstance(v, str) and _is_label(str(key), v):
                            label = f"{name}[].{key}={v}"
                            counts[label] = counts.get(label, 0) + 1
                self.walk(item, f"{name}[]", depth + 1, in_array=True)
            if not in_array:
                for label, n in counts.items():
                    self.numbers[f"count({label})"] = float(n)
        elif isinstance(value, bool):
            self.shape.add(f"{name}:bool")
            if not in_array:
                self.labels[name] = str(value).lower()
        elif isinstance(value, int | float):
            self.shape.add(f"{name}:number")
            if not in_array and not (EPOCH_RANGE[0] <= abs(value) < EPOCH_RANGE[1]):
                self.numbers[name] = float(value)
        elif isinstance(value, str):
            self.shape.add(f"{name}:string")
            if not in_array and (force or _is_label(path.rsplit(".", 1)[-1], value)):
                text = _DIGITS.sub("#", value)
                self.labels[name] = text if len(text) <= MAX_LABEL_CHARS else _digest(text)
        elif value is None:
            self.shape.add(f"{name}:null")


def _is_label(key: str, value: str) -> bool:
    return len(value) <= MAX_LABEL_CHARS and not is_noise(key, value)


def is_noise(key: str, value: str) -> bool:
    """A key that names a time, id, version… or a value that looks like a timestamp, a
    UUID or a hex digest: it changes on every call without meaning anything."""
    return bool(_NOISE_KEY.search(key) or _NOISE_TEXT.match(value.strip()))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _fmt(value: float | None) -> str:
    if value is None:
        return "none"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
