"""Secret masking for anything that is about to be written: logs, stored results, prompts.

Two complementary nets for logs, because either alone leaks:

- *known values*: every secret the process decrypts (header values, bearer tokens, API keys) is
  registered with `register_secret` and masked wherever it shows up, whatever the key, message
  or traceback that carries it;
- *shapes*: `Bearer …` / `Basic …` credentials, `authorization: …`-style pairs in free text, and
  values under sensitive keys (`authorization`, `token`, `secret`, `api-key`, `password`,
  `cookie`) in structured data, even when the value was never registered.

Which values are secrets (`job_secrets`): every configured header value of the job
(`default_headers`, each endpoint's `headers`, the plan's headers) except those of
descriptive headers (`NON_SECRET_HEADERS`: content-type, accept…), each endpoint's bearer
token, the password of URL userinfo (and `user:password`, which is what Basic auth encodes),
and URL query values whose parameter name looks secret (`SECRET_QUERY_PARAM`: token, key,
secret, pass, auth, sig, credential, session). A secret is masked in every encoding it can
travel in (`secret_forms`): raw, JSON-escaped (once or twice), URL-encoded (either hex case,
`+` or `%20`) and base64 (standard and URL-safe, padded or not, and at each of the three byte
alignments it can take inside a longer base64 text). `SecretMasker` applies one job's
secrets to text and to structured JSON (keys too) *before* anything is rendered or written.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

if TYPE_CHECKING:
    from cronicorn.domain.models import JobContext, Plan

MASK = "***"
"""How a secret is shown (logs, API answers); given back as input it means "keep the stored
value"."""
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


_registered: set[str] = set()
"""Raw values already registered (their forms are in `_secrets`)."""

SECRET_QUERY_PARAM = re.compile(r"token|key|secret|pass|auth|sig|credential|session", re.I)
"""URL query parameters whose values are treated as secrets."""
_MIN_BASE64_CORE = 6
"""A secret's base64 text at an inner alignment loses up to two characters per end; shorter
cores than this would match unrelated base64."""


def secret_forms(value: str) -> set[str]:
    """`value` in every encoding it can be echoed in (see the module docstring)."""
    forms = {value}
    escaped = {value}
    for _ in range(2):  # JSON text inside a JSON string is escaped twice
        escaped = {
            json.dumps(v, ensure_ascii=ascii)[1:-1] for v in escaped for ascii in (True, False)
        }
        forms |= escaped
    for plain in list(forms):
        for encoded in (quote(plain, safe=""), quote(plain), quote_plus(plain)):
            forms.add(encoded)
            forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
    raw = value.encode("utf-8")
    forms.update(_base64_forms(raw))
    try:
        latin = value.encode("latin-1")  # aiohttp encodes Basic credentials as latin-1
    except UnicodeEncodeError:
        latin = raw
    if latin != raw:
        forms.update(_base64_forms(latin))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _base64_forms(raw: bytes) -> set[str]:
    full = base64.b64encode(raw).decode()
    forms = {full, full.rstrip("=")}
    for shift in (0, 1, 2):
        text = base64.b64encode(b"\0" * shift + raw).decode()
        start = -(-8 * shift // 6)  # first character made only of the secret's bits
        end = (8 * (shift + len(raw))) // 6
        core = text[start:end]
        if len(core) >= _MIN_BASE64_CORE:
            forms.add(core)
    forms.update({f.replace("+", "-").replace("/", "_") for f in forms})
    return forms


def header_secrets(headers: Mapping[str, str] | None) -> list[str]:
    """The secret values of a header map: every value except those of descriptive headers;
    for `Bearer x` / `Basic x` / `Token x` values, `x` on its own as well."""
    out: list[str] = []
    for name, value in (headers or {}).items():
        if name.lower() in NON_SECRET_HEADERS or not value:
            continue
        out.append(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.lower() in ("bearer", "basic", "token"):
            out.append(credential.strip())
    return out


def url_secrets(url: str) -> list[str]:
    """The secrets inside a URL: the userinfo password (also as `user:password`, decoded and
    as written) and the values of query parameters named like secrets."""
    if "@" not in url and "?" not in url:  # no userinfo, no query: nothing to parse (per run)
        return []
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    out: list[str] = []
    if password:
        out.append(password)
        out.append(f"{username or ''}:{password}")
        out.append(unquote(password))
        out.append(f"{unquote(username or '')}:{unquote(password)}")
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if SECRET_QUERY_PARAM.search(name):
            out.append(value)
    return out


def _secret_query_name(raw_name: str) -> bool:
    return bool(SECRET_QUERY_PARAM.search(unquote_plus(raw_name)))


def split_url_secrets(url: str) -> tuple[str, dict[str, Any]]:
    """(`url` with its secrets replaced by `***`, the secrets) — the userinfo password and
    the values of secret-named query parameters, kept exactly as written so that
    `join_url_secrets` restores the very same URL. Empty dict: nothing secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, {}
    secrets: dict[str, Any] = {}
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        if password and password != MASK:
            secrets["password"] = password
            netloc = f"{user}:{MASK}@{hostport}"
    pairs = []
    query: list[list[str]] = []
    for pair in parts.query.split("&") if parts.query else []:
        name, eq, value = pair.partition("=")
        if eq and value and value != MASK and _secret_query_name(name):
            query.append([name, value])
            pair = f"{name}={MASK}"
        pairs.append(pair)
    if query:
        secrets["query"] = query
    if not secrets:
        return url, {}
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), parts.fragment)), secrets


def join_url_secrets(masked: str, secrets: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """(`masked` with each `***` secret put back from `secrets`, the parts that had no stored
    value: "password" or "query parameter NAME")."""
    if not secrets and MASK not in masked:
        return masked, []
    secrets = secrets or {}
    parts = urlsplit(masked)
    missing: list[str] = []
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        if password == MASK:
            stored = secrets.get("password")
            if stored is None:
                missing.append("password")
            else:
                netloc = f"{user}:{stored}@{hostport}"
    available = [list(p) for p in secrets.get("query", [])]
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, eq, value = pair.partition("=")
        if eq and value == MASK and _secret_query_name(name):
            match = next((p for p in available if p[0] == name), None)
            if match is None:
                missing.append(f"query parameter {unquote_plus(name)!r}")
            else:
                available.remove(match)
                pair = f"{name}={match[1]}"
        pairs.append(pair)
    joined = urlunsplit((parts.scheme, netloc, parts.path, "&".join(pairs), parts.fragment))
    return joined, missing


def job_secrets(context: JobContext, plan: Plan | None = None) -> list[str]:
    """Every secret value of a job (see the module docstring), `plan` headers included."""
    values = header_secrets(context.job.default_headers)
    if context.job.signing_secret:
        values.append(context.job.signing_secret)
    for endpoint in context.endpoints:
        values += header_secrets(endpoint.headers)
        values += url_secrets(endpoint.url)
        if endpoint.bearer_token:
            values.append(endpoint.bearer_token)
    if plan is not None:
        for call in plan.calls:
            values += header_secrets(call.headers)
    return values


def register_secret(value: str | None) -> None:
    """Mask `value` (in all its `secret_forms`) in every log line from now on
    (process-wide).

    Call it wherever a secret enters memory in clear text (decryption, config loading).
    Cheap when `value` is already known (the common case: every claim decrypts again).
    """
    global _dirty
    if not value or len(value) < MIN_SECRET_LENGTH or value in _registered:
        return
    forms = secret_forms(value)
    with _lock:
        _registered.add(value)
        _secrets.update(forms)
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
        _registered.clear()
        _dirty = True
    _maskers.clear()


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


class SecretMasker:
    """Masks one set of secrets (all their forms) in text and in JSON values."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in secrets:
            if value and len(value) >= MIN_SECRET_LENGTH:
                forms |= secret_forms(value)
        self._pattern = _compile(forms) if forms else None

    @property
    def active(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        return value if self._pattern is None else self._pattern.sub(MASK, value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def json(self, value: Any, _depth: int = 0) -> Any:
        """A copy of a JSON value with every string (keys too) masked."""
        if self._pattern is None or value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if _depth > 64:
            return self.text(json.dumps(value, default=str))
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v, _depth + 1) for v in value]
        return value


_maskers: OrderedDict[frozenset[str], SecretMasker] = OrderedDict()
_MASKER_CACHE = 512


def masker_for(secrets: Iterable[str]) -> SecretMasker:
    """A (cached) masker for `secrets`: a job's secrets rarely change between runs, and
    compiling their pattern once per run would be the dominant cost."""
    key = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
    masker = _maskers.get(key)
    if masker is None:
        masker = SecretMasker(key)
        _maskers[key] = masker
        if len(_maskers) > _MASKER_CACHE:
            _maskers.popitem(last=False)
    else:
        _maskers.move_to_end(key)
    return masker
