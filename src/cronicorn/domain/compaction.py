"""Structure-aware compaction of JSON for prompts (and stored excerpts).

A plain character cut shows a model the first few items of a page and nothing after them:
a 3 KB page of 24 orders cut at 500 characters shows three orders and no totals. Compaction
instead keeps every key and every number outside long arrays, states each array's length,
summarises long arrays (counts of label-like string values, min/max/sum of numeric fields)
and shows only a sample of their items, shortening long strings first. It tightens step by
step until the text fits `max_chars`; only as a last resort is the text cut.

Pure: no I/O. Used by the AI prompts and by the store when it loads past results.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from cronicorn.domain.models import JsonValue
from cronicorn.domain.signature import is_noise

LEVELS: tuple[tuple[int | None, int | None], ...] = (
    (None, None),
    (10, 200),
    (5, 100),
    (3, 60),
    (2, 40),
    (1, 24),
    (0, 16),
)
"""(items shown per long array, characters per string), loosest first."""
MAX_LABEL_CHARS = 40
MAX_DISTINCT_LABELS = 6


def compact_json(value: JsonValue, max_chars: int) -> str:
    """`value` as compact JSON text of at most about `max_chars` characters (see module doc).
    Strings that are not JSON documents are cut like text."""
    if isinstance(value, str):
        return cut(value, max_chars)
    text = _dump(value)
    if len(text) <= max_chars:
        return text
    for sample, chars in LEVELS[1:]:
        text = _dump(_shrink(value, sample, chars))
        if len(text) <= max_chars:
            return text
    return cut(text, max_chars)


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[: max(0, limit)]}… [truncated, {len(text)} chars in total]"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _shrink(value: Any, sample: int | None, chars: int | None) -> Any:
    if isinstance(value, str):
        if chars is not None and len(value) > chars:
            return value[:chars] + "…"
        return value
    if isinstance(value, Mapping):
        return {str(k): _shrink(v, sample, chars) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = list(value)
        if sample is None or len(items) <= max(sample, 1) + 1:
            return [_shrink(v, sample, chars) for v in items]
        head = [_shrink(v, sample, chars) for v in items[:sample]]
        return [array_summary(items, shown=len(head)), *head]
    return value


def array_summary(items: list[Any], shown: int) -> str:
    """One line describing a long array: its length, how many items follow, counts of
    label-like values and numeric ranges of its objects' fields."""
    parts = [f"<{len(items)} items, {shown} shown"]
    labels: dict[str, Counter[str]] = {}
    numbers: dict[str, list[float]] = {}
    for item in items:
        if isinstance(item, Mapping):
            for key, v in item.items():
                if isinstance(v, bool):
                    labels.setdefault(str(key), Counter())[str(v).lower()] += 1
                elif isinstance(v, int | float):
                    numbers.setdefault(str(key), []).append(float(v))
                elif isinstance(v, str) and len(v) <= MAX_LABEL_CHARS and not is_noise(str(key), v):
                    labels.setdefault(str(key), Counter())[v] += 1
        elif isinstance(item, int | float) and not isinstance(item, bool):
            numbers.setdefault("", []).append(float(item))
    for key, counts in labels.items():
        if 1 < len(counts) <= MAX_DISTINCT_LABELS or (len(counts) == 1 and len(items) > 1):
            listed = ", ".join(f"{v} {n}" for v, n in counts.most_common())
            parts.append(f"{key}: {listed}")
    for key, values in numbers.items():
        name = f"{key}: " if key else ""
        parts.append(
            f"{name}min {_num(min(values))}, max {_num(max(values))}, sum {_num(sum(values))}"
        )
    return "; ".join(parts) + ">"


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"
