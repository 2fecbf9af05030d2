"""One structured-output Chat Completions call with its own transport retries.

The SDK's built-in retries are switched off (`max_retries=0` on the client) and done here
instead, so each failure and retry is counted, `Retry-After` is honoured with a cap, the
backoff sleeps on the injectable clock, and every attempt has a hard deadline of
`timeout_ms` (the SDK's timeout is per socket operation; a server trickling bytes could
otherwise hold a call far longer).
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp
import openai
from openai.types.chat import ChatCompletion

from cronicorn.ai.budget import ChatMessage
from cronicorn.ai.config import AIAgentConfig
from cronicorn.ai.stats import AIObserver, PlannerStats
from cronicorn.domain.models import TokenUsage
from cronicorn.observability.logging import sampled

log = logging.getLogger("cronicorn.ai")
_sampled_log = sampled(log)

_RETRYABLE_STATUS = frozenset({408, 409, 429})
COMPLETIONS_PATH = "/chat/completions"


_SAMPLE_COMPLETION: dict[str, Any] = {
    "id": "warm-up",
    "object": "chat.completion",
    "created": 0,
    "model": "warm-up",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "{}", "refusal": None},
        }
    ],
    "usage": {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}


@functools.cache
def warm_up_sdk() -> None:
    """Pay the SDK's one-time costs at start-up rather than in the first job's AI call:
    the response models are built lazily by pydantic on their first use (about 10 ms, far
    more on a loaded machine). `construct` is the SDK's own (unvalidated) parsing path for
    responses, so this builds exactly what the first reply would."""
    ChatCompletion.construct(**_SAMPLE_COMPLETION)


class Sleeper(Protocol):
    async def sleep(self, seconds: float) -> None: ...


@dataclass
class RequestCounter:
    """Requests sent on behalf of one phase of one job."""

    count: int = 0


class TransportFailure(Exception):
    """The model could not be reached (after retries) or answered with an HTTP error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff between transport attempts."""

    base_s: float = 0.5
    max_s: float = 8.0
    retry_after_cap_s: float = 30.0

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        return rng.uniform(0.0, min(self.max_s, self.base_s * 2**retry))


class ChatTransport:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        config: AIAgentConfig,
        stats: PlannerStats,
        clock: Sleeper,
        backoff: Backoff,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._config = config
        self._stats = stats
        self._clock = clock
        self._backoff = backoff
        self._rng = rng or random.Random()
        self.observer: AIObserver | None = None

    async def complete(
        self, messages: list[ChatMessage], response_format: dict[str, Any]
    ) -> ChatCompletion:
        """The completion, or TransportFailure once `max_retries` retries are spent (or at
        once for a non-retryable HTTP error such as 400/401/404)."""
        completion, _latency = await self.complete_timed(messages, response_format)
        return completion

    async def complete_timed(
        self,
        messages: list[ChatMessage],
        response_format: dict[str, Any],
        phase: str = "",
        requests: RequestCounter | None = None,
    ) -> tuple[ChatCompletion, float]:
        """`complete`, plus the latency of the request that succeeded. Failed requests are
        reported (to the log and the observer) here; the caller reports the reply once it
        has judged it, with `report`. `requests` counts this caller's requests only (the
        planner's stats are shared by every concurrent job)."""
        retries = self._config.max_retries
        for attempt in range(retries + 1):
            self._stats.ai_calls += 1
            if requests is not None:
                requests.count += 1
            started = time.perf_counter()
            try:
                completion = await self._send(messages, response_format)
                return completion, time.perf_counter() - started
            except TransportFailure as failure:
                self.report(phase, _outcome(failure), TokenUsage(), time.perf_counter() - started)
                self._stats.transport_errors += 1
                retryable, retry_after = _classify(failure)
                if not retryable or attempt == retries:
                    raise
                self._stats.transport_retries += 1
                delay = self._backoff.delay(attempt, retry_after, self._rng)
                log.info("AI transport error (%s); retry %d in %.2fs", failure, attempt + 1, delay)
                await self._clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def report(self, phase: str, outcome: str, usage: TokenUsage, latency_s: float) -> None:
        """One AI request ended: a sampled debug line and the observer (metrics)."""
        _sampled_log.debug(
            "AI %s request: %s in %.0f ms (%d in / %d out tokens)",
            phase or "?",
            outcome,
            latency_s * 1000,
            usage.input,
            usage.output,
            extra={"phase": phase, "outcome": outcome, "latency_ms": round(latency_s * 1000, 1)},
        )
        if self.observer is not None:
            try:
                self.observer.observe_ai_call(phase, outcome, usage, latency_s)
            except Exception:
                log.exception("AI observer failed; ignored")

    def report_repair(self, outcome: str) -> None:
        if self.observer is not None:
            try:
                self.observer.observe_repair(outcome)
            except Exception:
                log.exception("AI observer failed; ignored")

    async def _send(
        self, messages: list[ChatMessage], response_format: dict[str, Any]
    ) -> ChatCompletion:
        timeout_s = self._config.timeout_ms / 1000
        body = {
            "model": self._config.model,
            "messages": messages,
            "temperature": self._config.temperature,
            "max_completion_tokens": self._config.max_output_tokens,
            "response_format": response_format,
        }
        try:
            async with asyncio.timeout(timeout_s):
                # `post` rather than `chat.completions.create`: the same request and the
                # same parsed ChatCompletion, without `create`'s per-call walk of every
                # parameter against its TypedDict (about 1 ms of CPU per call with our
                # schema and prompts — a third of the SDK's cost per call). Our body is
                # plain JSON already; there is nothing to transform.
                return await self._client.post(
                    COMPLETIONS_PATH,
                    cast_to=ChatCompletion,
                    body=body,
                    options={"timeout": timeout_s},
                )
        except (TimeoutError, openai.APITimeoutError) as exc:
            refused = _connection_failure(exc)
            if refused is not None:
                raise _Connection("connection", f"Connection error: {refused}") from None
            raise _Timeout("timeout", f"no reply within {timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            raise _Connection("connection", str(exc)) from None
        except openai.APIStatusError as exc:
            raise _Status(exc) from None


class _Timeout(TransportFailure):
    pass


class _Connection(TransportFailure):
    pass


class _Status(TransportFailure):
    def __init__(self, exc: openai.APIStatusError) -> None:
        super().__init__(f"http_{exc.status_code}", _short(exc.message))
        self.status = exc.status_code
        self.retry_after = _retry_after(exc.response.headers)


def _connection_failure(exc: BaseException) -> BaseException | None:
    """The aiohttp connection error behind a reported timeout, if any. The SDK's aiohttp
    transport maps every `ClientConnectionError` without a more specific entry (refused,
    reset, server disconnected) to httpx's `ConnectTimeout`, so the SDK says "timed out"
    for a server that is simply down; the cause chain still holds the real error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientConnectionError) and not isinstance(
            current, aiohttp.ServerTimeoutError
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def _outcome(failure: TransportFailure) -> str:
    """The bounded metrics outcome of a failed request."""
    if isinstance(failure, _Timeout):
        return "timeout"
    if isinstance(failure, _Status) and failure.status == 429:
        return "rate_limited"
    return "error"


def _classify(failure: TransportFailure) -> tuple[bool, float | None]:
    if isinstance(failure, _Status):
        retryable = failure.status in _RETRYABLE_STATUS or failure.status >= 500
        return retryable, failure.retry_after
    return True, None


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.fromtimestamp(time.time(), UTC)).total_seconds())


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
