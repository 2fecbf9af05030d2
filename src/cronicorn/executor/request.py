"""Turning an endpoint + a planned call into an HTTP request.

The session sends the configured User-Agent; header precedence over it is
job defaults < endpoint headers < plan headers, compared
case-insensitively; the endpoint's `bearer_token` is applied last because it is the endpoint's
own credential, and the `Idempotency-Key` (when given) after it: the same for every attempt
and every re-run of one due time, never overridden by configured headers. GET/HEAD/DELETE
carry parameters in the query string (non-scalars JSON-encoded); other methods send a JSON
body: the endpoint's default body (when an object) overlaid with the parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from yarl import URL

from cronicorn.domain.idempotency import IDEMPOTENCY_HEADER
from cronicorn.domain.models import HTTP_METHODS, EndpointSpec, JsonValue, PlannedCall
from cronicorn.domain.signing import signature_headers

QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_JSON = "application/json"


class InvalidRequest(ValueError):
    """The endpoint/plan cannot form a valid request (recorded as `invalid_request`)."""


@dataclass(slots=True)
class PreparedRequest:
    method: str
    url: URL
    headers: dict[str, str] | None
    """None: only the session defaults (User-Agent)."""
    body: bytes | None


def _query_value(value: JsonValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win; names compare case-insensitively, the winner's spelling is kept."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


def signed_headers(
    headers: Mapping[str, str] | None, secret: str, timestamp: int, body: bytes | None
) -> dict[str, str]:
    """`headers` plus the signature of `body` (empty for none) at `timestamp`; the signature
    headers replace any configured header of the same name."""
    return merge_headers(headers or {}, signature_headers(secret, timestamp, body or b""))


def json_body(endpoint: EndpointSpec, parameters: Mapping[str, JsonValue]) -> JsonValue:
    base = endpoint.body
    if parameters:
        if isinstance(base, dict):
            return {**base, **parameters}
        return dict(parameters)
    return base


class RequestBuilder:
    """Builds requests; caches parsed endpoint URLs (parsing is a hot-path cost)."""

    def __init__(self) -> None:
        self._urls: dict[str, URL] = {}

    def _url(self, raw: str) -> URL:
        url = self._urls.get(raw)
        if url is None:
            try:
                url = URL(raw)
            except (ValueError, TypeError) as exc:
                raise InvalidRequest(f"invalid URL: {exc}") from exc
            if not url.scheme:
                raise InvalidRequest("URL must be absolute")
            if len(self._urls) < 10_000:
                self._urls[raw] = url
        return url

    def build(
        self,
        endpoint: EndpointSpec,
        call: PlannedCall,
        default_headers: Mapping[str, str] | None,
        idempotency_key: str | None = None,
    ) -> PreparedRequest:
        method = endpoint.method.upper()
        if method not in HTTP_METHODS:
            raise InvalidRequest(f"unsupported method {endpoint.method!r}")
        url = self._url(endpoint.url)
        layers = [layer for layer in (default_headers, endpoint.headers, call.headers) if layer]
        if endpoint.bearer_token:
            layers.append({"Authorization": f"Bearer {endpoint.bearer_token}"})
        if idempotency_key is not None:
            layers.append({IDEMPOTENCY_HEADER: idempotency_key})
        headers = merge_headers(*layers) if layers else None
        body: bytes | None = None
        if method in QUERY_METHODS:
            if call.parameters:
                query = {k: _query_value(v) for k, v in call.parameters.items()}
                url = url.update_query(query)
        else:
            payload = json_body(endpoint, call.parameters)
            if payload is not None:
                try:
                    body = json.dumps(payload, separators=(",", ":")).encode()
                except (TypeError, ValueError) as exc:
                    raise InvalidRequest(f"body is not JSON-serialisable: {exc}") from exc
                if headers is None:
                    headers = {}
                if not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = _JSON
        if headers:
            for name, value in headers.items():
                if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                    raise InvalidRequest(f"header {name!r} contains a line break")
        return PreparedRequest(method, url, headers, body)
