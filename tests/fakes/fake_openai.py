"""A fake OpenAI-compatible server for tests: real HTTP on 127.0.0.1, scripted replies.

Serves `POST /v1/chat/completions` (aiohttp, port 0) so the real `openai` SDK can be pointed
at it. Every request body and its headers are recorded.

Scripted use — one reply per request, in order::

    async with FakeOpenAI() as fake:
        fake.enqueue(
            Reply.rate_limited(retry_after="0"),   # 429 with Retry-After
            Reply.json({"endpoints_to_call": [...], ...}, usage=Usage(100, 20)),
        )
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        ...
        assert fake.requests[1].messages[-1]["content"] == ...

Available replies: `Reply.json(obj)` (valid structured output), `Reply.text(raw)` (anything,
e.g. malformed JSON), `Reply.refusal_of(text)`, `Reply.truncated(raw)` (`finish_reason=length`),
`Reply.rate_limited(retry_after)`, `Reply.server_error(status)`, `Reply.slow(seconds, then)`.
`enqueue` also takes a callable `(body) -> Reply` for replies computed from the request.
Without `usage=`, a realistic `usage` block is computed (ceil(chars / 4) of the prompt and
of the reply).

Auto mode — for end-to-end tests with many jobs: `FakeOpenAI(auto=True, next_run_s=60)`
answers every request the queue does not cover. A plan request (`response_format` named
`cronicorn_plan`) gets a plan calling every id of the prompt's "Allowed endpoint_id values:"
line, sequentially; a schedule request (`cronicorn_schedule`) gets `next_run_at` = the
prompt's "Current time (UTC):" + `next_run_s`. Without auto mode an empty queue answers 400
(non-retryable), so a test never hangs on a missing script.

`FakeOpenAI(latency_s=0.5)` delays every reply by that much (benchmarks of AI overlap).

Requests whose `response_format` is a strict JSON schema that OpenAI would reject (an object
without `additionalProperties: false` or with a property not in `required`) get a 400 too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

from cronicorn.ai.prompts import ALLOWED_IDS_MARKER, CURRENT_TIME_MARKER
from cronicorn.ai.schemas import PLAN_SCHEMA_NAME, SCHEDULE_SCHEMA_NAME


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Use the constructors below."""

    status: int = 200
    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    usage: Usage | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def json(cls, obj: Any, *, usage: Usage | None = None) -> Reply:
        return cls(content=json.dumps(obj), usage=usage)

    @classmethod
    def text(cls, raw: str, *, usage: Usage | None = None) -> Reply:
        return cls(content=raw, usage=usage)

    @classmethod
    def refusal_of(cls, text: str, *, usage: Usage | None = None) -> Reply:
        return cls(refusal=text, usage=usage)

    @classmethod
    def truncated(cls, raw: str, *, usage: Usage | None = None) -> Reply:
        return cls(content=raw, finish_reason="length", usage=usage)

    @classmethod
    def rate_limited(cls, retry_after: str | None = "0") -> Reply:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=429, headers=headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status)

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        base = then or cls.text("{}")
        return Reply(**{**base.__dict__, "delay_s": seconds})


ReplyFactory = Callable[[dict[str, Any]], Reply]


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def text(self) -> str:
        """All message contents joined, for `in` assertions."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


class FakeOpenAI:
    def __init__(
        self,
        *,
        auto: bool = False,
        next_run_s: float = 60.0,
        api_key: str | None = None,
        latency_s: float = 0.0,
        responder: Callable[[dict[str, Any]], Reply] | None = None,
    ) -> None:
        """`latency_s`: added before every reply, like a real model's response time.
        `responder`: computes each reply from the request when nothing is queued (a model
        with a policy; takes precedence over `auto`)."""
        self.auto = auto
        self.responder = responder
        self.latency_s = latency_s
        self.next_run_s = next_run_s
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply | ReplyFactory] = deque()
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pending(self) -> int:
        return len(self._queue)

    def enqueue(self, *replies: Reply | ReplyFactory) -> None:
        self._queue.extend(replies)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(RecordedRequest(body=body, headers=dict(request.headers)))
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "invalid api key", "invalid_request_error")
        problem = strict_schema_problem(body)
        if problem:
            return _error(400, f"Invalid schema for response_format: {problem}", "invalid_schema")
        reply = self._next_reply(body)
        if reply is None:
            return _error(400, "FakeOpenAI: no scripted reply left", "fake_queue_empty")
        delay_s = reply.delay_s + self.latency_s
        if delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay_s)
        if reply.status != 200:
            return _error(reply.status, f"scripted HTTP {reply.status}", "fake", reply.headers)
        return web.json_response(self._completion(body, reply), headers=reply.headers)

    def _next_reply(self, body: dict[str, Any]) -> Reply | None:
        if self._queue:
            item = self._queue.popleft()
            return item if isinstance(item, Reply) else item(body)
        if self.responder is not None:
            return self.responder(body)
        return auto_reply(body, self.next_run_s) if self.auto else None

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        usage = reply.usage or Usage(
            prompt_tokens=math.ceil(prompt_chars / 4),
            completion_tokens=math.ceil(len(reply.content or reply.refusal or "") / 4),
        )
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.content,
                        "refusal": reply.refusal,
                    },
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage.as_json(),
        }


def auto_reply(body: dict[str, Any], next_run_s: float) -> Reply:
    """A valid answer computed from the request (see the module docstring)."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    name = body.get("response_format", {}).get("json_schema", {}).get("name")
    if name == PLAN_SCHEMA_NAME:
        found = re.findall(re.escape(ALLOWED_IDS_MARKER) + r"(\[.*\])", text)
        ids = json.loads(found[-1]) if found else []
        calls = [
            {
                "endpoint_id": endpoint_id,
                "parameters": [],
                "headers": [],
                "priority": 0,
                "depends_on": [],
                "critical": False,
            }
            for endpoint_id in ids
        ]
        return Reply.json(
            {
                "endpoints_to_call": calls,
                "execution_strategy": "sequential",
                "concurrency_limit": None,
                "preliminary_next_run_at": None,
                "reasoning": "auto: call every endpoint",
                "confidence": 0.9,
            }
        )
    if name == SCHEDULE_SCHEMA_NAME:
        found = re.findall(re.escape(CURRENT_TIME_MARKER) + r"(\S+)", text)
        now = datetime.fromisoformat(found[-1])
        at = now + timedelta(seconds=next_run_s)
        return Reply.json(
            {
                "next_run_at": at.isoformat().replace("+00:00", "Z"),
                "reasoning": f"auto: run again in {next_run_s:g} s",
                "confidence": 0.9,
                "recommended_actions": [],
            }
        )
    return Reply(status=400)


def strict_schema_problem(body: dict[str, Any]) -> str | None:
    """What OpenAI's strict mode would reject in the request's schema, or None."""
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") or {}
    if fmt.get("type") != "json_schema" or not spec.get("strict"):
        return None
    return _schema_problem(spec.get("schema", {}), "#")


def _schema_problem(node: Any, path: str) -> str | None:
    if isinstance(node, list):
        for i, item in enumerate(node):
            found = _schema_problem(item, f"{path}/{i}")
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object":
        props = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            return f"{path}: additionalProperties must be false"
        if set(node.get("required", [])) != set(props):
            return f"{path}: every property must be required"
    for key, value in node.items():
        if key != "enum":
            found = _schema_problem(value, f"{path}/{key}")
            if found:
                return found
    return None


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(payload, status=status, headers=headers)
