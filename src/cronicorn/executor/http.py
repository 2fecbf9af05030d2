"""`HttpExecutor`: the aiohttp implementation of the `Executor` port (SPEC §7).

One instance per worker: it owns the shared `ClientSession` (connection pool, guarded DNS),
the global in-flight semaphore (`max_concurrency`, across every concurrent `execute`) and the
per-endpoint circuit breakers, which therefore persist across runs.

Per call: circuit admission → global slot → one attempt under a timeout covering redirects
and the body read → retry decision → backoff. External aborts (the `abort` event) cancel the
calls in flight and turn them, and every call not yet started, into `aborted` results; a
timeout is something else (a retryable failure).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from cronicorn.domain.conditions import condition_holds
from cronicorn.domain.idempotency import DueRun
from cronicorn.domain.models import (
    CircuitState,
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    ErrorCategory,
    ExecutionStrategy,
    Plan,
    PlannedCall,
)
from cronicorn.executor.circuit import CircuitBreakers, Ticket, TransitionHook
from cronicorn.executor.config import ExecutionConfig
from cronicorn.executor.events import ExecutorEvents, SafeEvents
from cronicorn.executor.exchange import Exchange
from cronicorn.executor.request import InvalidRequest, PreparedRequest, RequestBuilder
from cronicorn.executor.retry import AttemptOutcome, RetryPolicy
from cronicorn.executor.slots import Slots
from cronicorn.executor.ssrf import (
    GuardedResolver,
    HostPolicy,
    Resolver,
    SystemResolver,
    find_ssrf_block,
)
from cronicorn.executor.strategies import run_calls, validate_calls
from cronicorn.observability.logging import sampled
from cronicorn.runtime.abort import AbortSignal
from cronicorn.runtime.clock import Clock, SystemClock

log = logging.getLogger("cronicorn.executor")
_sampled_log = sampled(log)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class _Run:
    """The state of one `execute` call."""

    calls: tuple[PlannedCall, ...]
    endpoints: Mapping[str, EndpointSpec]
    default_headers: Mapping[str, str] | None
    events: SafeEvents
    abort: asyncio.Event | None
    signing_secret: str | None = None
    due_run: DueRun | None = None
    in_flight: set[asyncio.Task[object]] = field(default_factory=set)
    done: dict[str, EndpointResult] = field(default_factory=dict)
    """Finished results by endpoint name, for later calls' conditions."""

    def idempotency_key(self, endpoint_id: str) -> str:
        """Derived from the due run (same for every retry and every re-run of this due
        time); a run without one (the executor used directly) gets a fresh key per call."""
        if self.due_run is None:
            return str(uuid.uuid4())
        return self.due_run.idempotency_key(endpoint_id)

    def aborted(self) -> bool:
        return self.abort is not None and self.abort.is_set()

    def cancel_soon(self) -> None:
        """On abort: cancel the calls in flight at the loop's next turn (as a task waiting
        for the abort would)."""
        asyncio.get_running_loop().call_soon(_cancel_all, self.in_flight)

    def record(self, index: int, result: EndpointResult) -> EndpointResult:
        endpoint = self.endpoints.get(self.calls[index].endpoint_id)
        if endpoint is not None:
            self.done[endpoint.name] = result
        return result

    def skip(self, index: int, category: ErrorCategory, reason: str) -> EndpointResult:
        return self.record(index, self._skipped(index, category, reason))

    def _skipped(self, index: int, category: ErrorCategory, reason: str) -> EndpointResult:
        aborted = category == ErrorCategory.ABORTED
        status = EndpointStatus.ABORTED if aborted else EndpointStatus.SKIPPED
        endpoint_id = self.calls[index].endpoint_id
        result = EndpointResult(endpoint_id, status, error=reason, error_category=category)
        if self.events.active:
            self.events.on_endpoint_progress(
                endpoint_id, "finished", {"status": status.value, "error_category": category}
            )
        return result


class HttpExecutor:
    """Executes plans over HTTP. Create once per worker; `close()` on shutdown."""

    def __init__(
        self,
        config: ExecutionConfig,
        *,
        resolver: Resolver | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or self._clock.sleep
        self._policy = HostPolicy(
            allow_private_networks=config.allow_private_networks,
            allowed_hosts=config.allowed_hosts,
        )
        self._resolver: Resolver = resolver or SystemResolver()
        self._builder = RequestBuilder()
        self._retry = RetryPolicy(config, rng)
        self._breakers = CircuitBreakers(config.circuit_breaker, self._clock.monotonic)
        self._slots = Slots(config.max_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._exchange = Exchange(config, self._policy, self._clock)

    def circuit_state(self, endpoint_id: str) -> CircuitState:
        """`closed`, `open` or `half_open` (an open circuit half-opens on the next call
        after its cooldown)."""
        return self._breakers.state(endpoint_id)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # the executor's own semaphore bounds in-flight calls
                resolver=GuardedResolver(self._resolver, self._policy),
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": self._config.user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),  # no state shared between jobs
                trust_env=False,  # an env proxy would bypass the SSRF guard
            )
        return session

    async def execute(
        self,
        plan: Plan,
        endpoints: Mapping[str, EndpointSpec],
        *,
        default_headers: Mapping[str, str] | None = None,
        abort: asyncio.Event | None = None,
        events: ExecutorEvents | None = None,
        signing_secret: str | None = None,
        due_run: DueRun | None = None,
    ) -> list[EndpointResult]:
        """One result per planned call, in plan order. Raises ValidationFailed (before any
        call) for unknown/duplicate ids, unknown dependencies and cycles; never raises for
        endpoint failures. Cancelling the task running `execute` propagates; use `abort` to
        stop a run and still get its results. With `signing_secret`, every attempt is
        signed (see `cronicorn.domain.signing`). Every call carries an `Idempotency-Key`
        derived from `due_run` (see `cronicorn.domain.idempotency`)."""
        order = validate_calls(plan.calls, endpoints)
        run = _Run(
            plan.calls,
            endpoints,
            default_headers,
            SafeEvents(events),
            abort,
            signing_secret,
            due_run,
        )
        limit = self._config.max_concurrency
        if plan.concurrency_limit:
            limit = max(1, min(plan.concurrency_limit, limit))
        watcher = None
        signal: AbortSignal | None = None
        if abort is not None and not abort.is_set():
            if isinstance(abort, AbortSignal):  # a callback, not a task per run
                signal = abort
                signal.add_callback(run.cancel_soon)
            else:
                watcher = asyncio.create_task(self._cancel_on_abort(abort, run.in_flight))
        try:
            return await run_calls(
                plan.strategy or ExecutionStrategy.SEQUENTIAL,
                plan.calls,
                limit,
                functools.partial(self._run_checked, run),
                run.skip,
                run.aborted,
                order,
            )
        finally:
            if watcher is not None:
                watcher.cancel()
            if signal is not None:
                signal.remove_callback(run.cancel_soon)

    @staticmethod
    async def _cancel_on_abort(abort: asyncio.Event, in_flight: set[asyncio.Task[object]]) -> None:
        await abort.wait()
        _cancel_all(in_flight)

    async def _run_checked(self, run: _Run, index: int) -> EndpointResult:
        """The call, unless its `condition` does not hold over the earlier results."""
        condition = run.calls[index].condition
        if condition:
            holds, reason = condition_holds(condition, run.done)
            if not holds:
                return run.skip(index, ErrorCategory.CONDITION_NOT_MET, reason)
        return run.record(index, await self._run_one(run, index))

    async def _run_one(self, run: _Run, index: int) -> EndpointResult:
        call = run.calls[index]
        endpoint = run.endpoints[call.endpoint_id]
        events = run.events
        result = EndpointResult(call.endpoint_id, EndpointStatus.FAILED)
        result.started_at = self._clock.now()
        started = self._clock.monotonic()
        if events.active:
            events.on_endpoint_progress(endpoint.id, "started", {"method": endpoint.method})
        task = asyncio.current_task() if run.abort is not None else None
        if task is not None:
            run.in_flight.add(task)
        try:
            await self._call_with_retries(run, endpoint, call, result)
        except asyncio.CancelledError:
            if task is None or not run.aborted():
                raise
            task.uncancel()
            result.status = EndpointStatus.ABORTED
            result.error_category = ErrorCategory.ABORTED
            result.error = "aborted while in flight"
        except Exception as exc:  # a bug must cost one result, not the whole run
            log.exception(
                "endpoint %s: unexpected executor error",
                endpoint.id,
                extra={"endpoint_id": endpoint.id},
            )
            result.status = EndpointStatus.FAILED
            result.error_category = ErrorCategory.NETWORK
            result.error = f"internal executor error: {type(exc).__name__}"
        finally:
            if task is not None:
                run.in_flight.discard(task)
        result.duration_ms = (self._clock.monotonic() - started) * 1000
        if events.active:
            events.on_endpoint_progress(endpoint.id, "finished", _summary(result))
        return result

    def _prepare(
        self, run: _Run, endpoint: EndpointSpec, call: PlannedCall, result: EndpointResult
    ) -> PreparedRequest | None:
        """The request to send, or None with `result` failed (invalid or blocked)."""
        try:
            request = self._builder.build(
                endpoint, call, run.default_headers, run.idempotency_key(endpoint.id)
            )
        except InvalidRequest as exc:
            _fail(result, ErrorCategory.INVALID_REQUEST, str(exc))
            return None
        result.request_bytes = len(request.body) if request.body else 0
        refusal = self._policy.check_url(request.url)
        if refusal is not None:
            result.attempts = 1
            _fail(result, ErrorCategory.SSRF_BLOCKED, f"blocked destination: {refusal}")
            return None
        return request

    async def _call_with_retries(
        self, run: _Run, endpoint: EndpointSpec, call: PlannedCall, result: EndpointResult
    ) -> None:
        request = self._prepare(run, endpoint, call, result)
        if request is None:
            return
        events = run.events
        on_change = events.on_circuit_state_change
        attempt = 0
        while True:
            ticket = self._breakers.admit(endpoint.id, on_change)
            if ticket is None:
                if attempt == 0:
                    _fail(result, ErrorCategory.CIRCUIT_OPEN, "circuit open: call not sent")
                else:
                    result.error = f"{result.error}; circuit opened, retries stopped"
                return
            attempt += 1
            result.attempts = attempt
            if attempt > 1:
                _clear_response(result)
            outcome = await self._attempt(
                endpoint, request, result, ticket, on_change, run.signing_secret
            )
            if log.isEnabledFor(logging.DEBUG):
                _log_attempt(endpoint.id, attempt, result)
            if outcome.category is None:
                return
            if not self._retry.should_retry(request.method, outcome, attempt):
                if outcome.retryable and attempt >= self._retry.max_attempts:
                    events.on_retry_exhausted(endpoint.id, attempt, result.error or "")
                return
            if run.aborted():  # an abort that raced with this attempt's own timeout
                raise asyncio.CancelledError
            delay = self._retry.delay_s(attempt, outcome)
            events.on_retry_attempt(endpoint.id, attempt + 1, delay, result.error or "")
            if events.active:
                events.on_endpoint_progress(
                    endpoint.id, "retrying", {"attempt": attempt + 1, "delay_s": delay}
                )
            await self._sleep(delay)

    async def _attempt(
        self,
        endpoint: EndpointSpec,
        request: PreparedRequest,
        result: EndpointResult,
        ticket: Ticket,
        on_change: TransitionHook,
        signing_secret: str | None = None,
    ) -> AttemptOutcome:
        """One attempt under a global slot and a deadline covering redirects and the body
        read; fills `result` and settles the circuit ticket. The deadline is a bare timer
        handle (cheaper than asyncio.timeout on this path) that cancels the task and is
        told apart from an external cancellation by its `expired` flag."""
        timeout_s = (endpoint.timeout_ms or self._config.default_timeout_ms) / 1000
        slots = self._slots
        if not slots.try_acquire():
            try:
                await slots.acquire()
            except BaseException:
                self._breakers.release(ticket)
                raise
        deadline = _Deadline()
        handle = asyncio.get_running_loop().call_later(timeout_s, deadline.fire)
        outcome: AttemptOutcome | None
        try:
            outcome = await self._exchange.run(
                self._get_session(), endpoint, request, result, signing_secret
            )
        except asyncio.CancelledError:
            if not deadline.expired:
                self._breakers.release(ticket)
                raise
            deadline.task.uncancel()
            outcome = _timed_out(result, timeout_s)
        except TimeoutError:
            outcome = _timed_out(result, timeout_s)
        except Exception as exc:
            outcome = _classify(exc, result)
            if outcome is None:
                self._breakers.release(ticket)
                raise
        finally:
            handle.cancel()
            slots.release()
        self._settle(outcome, result, ticket, on_change)
        return outcome

    def _settle(
        self,
        outcome: AttemptOutcome,
        result: EndpointResult,
        ticket: Ticket,
        on_change: TransitionHook,
    ) -> None:
        if outcome.category is None:
            if ticket.trial:  # a success only matters to a half-open circuit
                self._breakers.record(ticket, failure=False, on_change=on_change)
            result.status = EndpointStatus.SUCCESS
            result.error = None
            result.error_category = None
            return
        if outcome.category is ErrorCategory.SSRF_BLOCKED:
            self._breakers.release(ticket)
        else:
            self._breakers.record(ticket, failure=outcome.breaker_failure, on_change=on_change)
        result.status = EndpointStatus.FAILED
        result.error_category = outcome.category


class _Deadline:
    """Timer target for one attempt: marks expiry, then cancels the attempt's task."""

    __slots__ = ("expired", "task")

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.expired = False

    def fire(self) -> None:
        self.expired = True
        self.task.cancel()


def _cancel_all(in_flight: set[asyncio.Task[object]]) -> None:
    """An abort: cancel every call in flight (each then becomes an `aborted` result)."""
    for task in list(in_flight):
        task.cancel()


def _timed_out(result: EndpointResult, timeout_s: float) -> AttemptOutcome:
    result.error = f"timed out after {timeout_s:g}s"
    return AttemptOutcome(ErrorCategory.TIMEOUT, retryable=True)


def _classify(exc: Exception, result: EndpointResult) -> AttemptOutcome | None:
    """The outcome of a transport exception; None for anything that is not one (a bug)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        blocked = find_ssrf_block(exc)
        if blocked is not None:
            result.error = f"blocked destination: {blocked}"
            return AttemptOutcome(ErrorCategory.SSRF_BLOCKED)
        result.error = f"connection failed: {exc}"
        transient = not isinstance(exc, aiohttp.ClientConnectorCertificateError)
        return AttemptOutcome(ErrorCategory.NETWORK, sent=False, retryable=transient)
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        result.error = f"network error: {type(exc).__name__}: {exc}"
        return AttemptOutcome(ErrorCategory.NETWORK, retryable=True)
    return None


def _clear_response(result: EndpointResult) -> None:
    """Forget the previous attempt's response before a retry."""
    result.status_code = None
    result.response_body = None
    result.response_bytes = 0
    result.truncated = False
    result.content_type = None


def _log_attempt(endpoint_id: str, attempt: int, result: EndpointResult) -> None:
    """Sampled (`logger.sampling_rate`): one line per attempt is the noisiest we write."""
    _sampled_log.debug(
        "endpoint %s attempt %d: %s",
        endpoint_id,
        attempt,
        result.error or f"HTTP {result.status_code}",
        extra={"endpoint_id": endpoint_id, "attempt": attempt, "status_code": result.status_code},
    )


def _fail(result: EndpointResult, category: ErrorCategory, error: str) -> None:
    result.status = EndpointStatus.FAILED
    result.error_category = category
    result.error = error


def _summary(result: EndpointResult) -> dict[str, object]:
    return {
        "status": result.status.value,
        "status_code": result.status_code,
        "attempts": result.attempts,
        "duration_ms": result.duration_ms,
        "error_category": result.error_category,
    }
