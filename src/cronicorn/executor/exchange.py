"""One HTTP exchange: the request, its redirects (followed by hand) and the response capture.

Redirects are followed here rather than by aiohttp so each hop's destination goes through the
SSRF guard, the method/body rewrite follows the usual rules (303 → GET; 301/302 turn POST into
GET; 307/308 keep both), and nothing configured is forwarded to another origin: a hop whose
scheme, host or port differs carries none of the job's `default_headers`, the endpoint's
`headers` and bearer token, or the plan's headers (only `Content-Type` when the body is
re-sent, and the client's own User-Agent). Once dropped they stay dropped, even if a later hop
comes back to the first origin.

Signing: with the tenant's secret, each hop to the endpoint's own origin is signed afresh (its
own timestamp, over the exact body of that hop); a hop to another origin is not signed.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from cronicorn.domain.models import EndpointResult, EndpointSpec, ErrorCategory
from cronicorn.executor.config import ExecutionConfig
from cronicorn.executor.request import PreparedRequest, signed_headers
from cronicorn.executor.response import decode_body, read_capped
from cronicorn.executor.retry import SUCCESS, AttemptOutcome, parse_retry_after, status_retryable
from cronicorn.executor.ssrf import HostPolicy
from cronicorn.runtime.clock import Clock

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)


def redirected_request(request: PreparedRequest, status: int, target: URL) -> PreparedRequest:
    """The request to send to `target` after a `status` redirect."""
    method, body, headers = request.method, request.body, request.headers or {}
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
    if _origin(target) != _origin(request.url):
        headers = {
            k: v for k, v in headers.items() if body is not None and k.lower() == "content-type"
        }
    return PreparedRequest(method, target, headers, body)


class Exchange:
    def __init__(self, config: ExecutionConfig, policy: HostPolicy, clock: Clock) -> None:
        self._config = config
        self._policy = policy
        self._clock = clock

    async def run(
        self,
        session: aiohttp.ClientSession,
        endpoint: EndpointSpec,
        request: PreparedRequest,
        result: EndpointResult,
        signing_secret: str | None = None,
    ) -> AttemptOutcome:
        """Send `request`, following up to `max_redirects` redirects; fills `result`."""
        first = request.url
        for hop in range(self._config.max_redirects + 1):
            headers = request.headers
            if signing_secret is not None and (hop == 0 or _origin(request.url) == _origin(first)):
                now = int(self._clock.now().timestamp())
                headers = signed_headers(headers, signing_secret, now, request.body)
            async with session.request(
                request.method,
                request.url,
                headers=headers,
                data=request.body,
                allow_redirects=False,
            ) as resp:
                location = (
                    resp.headers.get("Location") if resp.status in REDIRECT_STATUSES else None
                )
                if location is None:
                    return await self._finish(resp, endpoint, result)
                status = resp.status
            try:
                target = request.url.join(URL(location))
            except (ValueError, TypeError):
                result.status_code = status
                result.error = f"HTTP {status} with an invalid Location header"
                return AttemptOutcome(ErrorCategory.NETWORK)
            refusal = self._policy.check_url(target)
            if refusal is not None:
                result.status_code = status
                result.error = f"redirect to {target.host} blocked: {refusal}"
                return AttemptOutcome(ErrorCategory.SSRF_BLOCKED)
            request = redirected_request(request, status, target)
        result.status_code = status
        result.error = f"too many redirects (more than {self._config.max_redirects})"
        return AttemptOutcome(ErrorCategory.NETWORK)

    async def _finish(
        self, resp: aiohttp.ClientResponse, endpoint: EndpointSpec, result: EndpointResult
    ) -> AttemptOutcome:
        status = resp.status
        result.status_code = status
        content_type = resp.content_type
        if "Content-Type" in resp.headers:
            result.content_type = content_type
        if endpoint.fire_and_forget:
            resp.close()
        else:
            cap = endpoint.max_response_bytes
            length = resp.content_length
            if length is not None and length <= cap:  # fast path: one read, no chunk loop
                raw = await resp.read()
                result.response_bytes, truncated = len(raw), False
            else:
                raw, result.response_bytes, truncated = await read_capped(resp, cap)
            result.response_body, result.truncated = decode_body(
                raw,
                content_type=content_type,
                charset=resp.charset,
                truncated=truncated,
                text_limit=self._config.response_content_length_limit,
            )
        if status < 400:
            return SUCCESS
        retryable = status_retryable(status)
        retry_after = None
        if retryable:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.now())
        result.error = f"HTTP {status} {resp.reason or ''}".rstrip()
        category = ErrorCategory.HTTP_5XX if status >= 500 else ErrorCategory.HTTP_4XX
        return AttemptOutcome(
            category, status_code=status, retry_after_s=retry_after, retryable=retryable
        )
