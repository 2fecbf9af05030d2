"""Response capture: read at most `cap` bytes, decode, keep JSON as JSON.

An endpoint can answer with gigabytes, or promise a body it never sends. Reading is streamed
and stops at the cap (the caller then closes the connection instead of draining it), and the
caller's timeout covers the whole read, so neither case can exhaust memory or hang a run.
"""

from __future__ import annotations

import codecs
import json

import aiohttp

from cronicorn.domain.models import JsonValue

_CHUNK = 64 * 1024


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> tuple[bytes, int, bool]:
    """(first `cap` bytes, bytes read from the wire, truncated?), reading in chunks so a
    huge or endless body never sits in memory. On truncation the connection is closed
    rather than drained."""
    parts: list[bytes] = []
    total = 0
    content = resp.content
    while total <= cap:
        chunk = await content.read(min(_CHUNK, cap + 1 - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    data = b"".join(parts)
    if total > cap:
        resp.close()
        return data[:cap], total, True
    return data, total, False


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


_codecs: dict[str | None, str] = {None: "utf-8"}


def _codec(charset: str | None) -> str:
    """Python codec name for a charset label (unknown labels: utf-8); memoised."""
    name = _codecs.get(charset)
    if name is None:
        try:
            name = codecs.lookup(charset or "utf-8").name
        except LookupError:
            name = "utf-8"
        if len(_codecs) < 256:
            _codecs[charset] = name
    return name


def decode_body(
    raw: bytes,
    *,
    content_type: str,
    charset: str | None,
    truncated: bool,
    text_limit: int,
) -> tuple[JsonValue, bool]:
    """(stored value, truncated?). Text is capped at `text_limit` characters; JSON is parsed
    only when complete and within the limit, otherwise the (capped) text is kept."""
    if not raw:
        return None, truncated
    text = raw.decode(_codec(charset), errors="replace")
    if len(text) > text_limit:
        return text[:text_limit], True
    if not truncated and is_json_type(content_type):
        try:
            return json.loads(text), False
        except ValueError:
            return text, False
    return text, truncated
