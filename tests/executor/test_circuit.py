"""Circuit breaker against a real server: open, short-circuit, half-open trials, close."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from cronicorn.domain.models import CircuitState, EndpointResult, EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor
from cronicorn.executor.circuit import CircuitBreakers
from tests.fakes.clock import FakeClock

from .conftest import (
    RecordingEvents,
    Serve,
    breaker,
    by_id,
    call,
    endpoint,
    local_config,
    plan,
)


class Flaky:
    """Answers `status`; while `gate` is closed, requests wait (to hold trials in flight)."""

    def __init__(self) -> None:
        self.status = 500
        self.hits = 0
        self.in_flight = 0
        self.gate = asyncio.Event()
        self.gate.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/r", self.handle)
        return app

    async def handle(self, _: web.Request) -> web.Response:
        self.hits += 1
        self.in_flight += 1
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return web.Response(status=self.status)


@pytest.fixture
async def flaky(serve: Serve) -> tuple[Flaky, str]:
    server = Flaky()
    return server, f"{await serve(server.app())}/r"


def make(clock: FakeClock, trials: int = 1, threshold: int = 3) -> HttpExecutor:
    config = local_config(
        max_endpoint_retries=0,
        circuit_breaker=breaker(
            failure_threshold=threshold,
            window_ms=10_000,
            cooldown_ms=1_000,
            half_open_max_calls=trials,
        ),
    )
    return HttpExecutor(config, clock=clock)


async def run(ex: HttpExecutor, url: str, events: RecordingEvents) -> EndpointResult:
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", url)), events=events)
    return result


async def test_breaker_opens_short_circuits_half_opens_with_bounded_trials_and_closes(
    flaky: tuple[Flaky, str], executors: list[HttpExecutor]
) -> None:
    server, url = flaky
    clock = FakeClock()
    ex = make(clock, trials=2)
    executors.append(ex)
    events = RecordingEvents()

    for _ in range(3):
        assert (await run(ex, url, events)).error_category == ErrorCategory.HTTP_5XX
    assert ex.circuit_state("e") == "open"
    assert events.of("circuit") == [("circuit", "e", "closed", "open")]

    refused = await run(ex, url, events)
    assert refused.status == EndpointStatus.FAILED
    assert refused.error_category == ErrorCategory.CIRCUIT_OPEN
    assert refused.attempts == 0
    assert server.hits == 3  # no request was sent

    clock.advance(1.5)  # past the cooldown
    server.status = 200
    server.gate.clear()
    pending = [asyncio.create_task(run(ex, url, events)) for _ in range(5)]
    for _ in range(200):
        if server.in_flight == 2 and sum(t.done() for t in pending) == 3:
            break
        await asyncio.sleep(0.01)
    assert server.in_flight == 2
    assert ex.circuit_state("e") == "half_open"
    done = [t.result() for t in pending if t.done()]
    assert [r.error_category for r in done] == [ErrorCategory.CIRCUIT_OPEN] * 3
    server.gate.set()
    trials = await asyncio.gather(*pending)
    assert sum(r.status == EndpointStatus.SUCCESS for r in trials) == 2
    assert server.hits == 5
    assert ex.circuit_state("e") == "closed"
    assert events.of("circuit") == [
        ("circuit", "e", "closed", "open"),
        ("circuit", "e", "open", "half_open"),
        ("circuit", "e", "half_open", "closed"),
    ]
    # Typed through the ExecutorEvents port, not bare strings.
    assert all(isinstance(state, CircuitState) for c in events.of("circuit") for state in c[2:])
    assert ex.circuit_state("e") is CircuitState.CLOSED
    assert (await run(ex, url, events)).status == EndpointStatus.SUCCESS


async def test_failed_trial_reopens_the_circuit(
    flaky: tuple[Flaky, str], executors: list[HttpExecutor]
) -> None:
    server, url = flaky
    clock = FakeClock()
    ex = make(clock, threshold=1)
    executors.append(ex)
    events = RecordingEvents()
    await run(ex, url, events)
    assert ex.circuit_state("e") == "open"
    clock.advance(1.5)
    trial = await run(ex, url, events)
    assert trial.error_category == ErrorCategory.HTTP_5XX
    assert ex.circuit_state("e") == "open"
    assert (await run(ex, url, events)).error_category == ErrorCategory.CIRCUIT_OPEN
    assert [c[3] for c in events.of("circuit")] == ["open", "half_open", "open"]
    assert server.hits == 2


async def test_client_errors_do_not_open_the_circuit(
    flaky: tuple[Flaky, str], executors: list[HttpExecutor]
) -> None:
    server, url = flaky
    server.status = 404
    ex = make(FakeClock(), threshold=2)
    executors.append(ex)
    events = RecordingEvents()
    for _ in range(4):
        assert (await run(ex, url, events)).error_category == ErrorCategory.HTTP_4XX
    assert ex.circuit_state("e") == "closed"
    assert server.hits == 4


async def test_failures_outside_the_window_do_not_count(
    flaky: tuple[Flaky, str], executors: list[HttpExecutor]
) -> None:
    _, url = flaky
    clock = FakeClock()
    ex = make(clock, threshold=2)
    executors.append(ex)
    events = RecordingEvents()
    await run(ex, url, events)
    clock.advance(11)  # beyond window_ms
    await run(ex, url, events)
    assert ex.circuit_state("e") == "closed"
    await run(ex, url, events)
    assert ex.circuit_state("e") == "open"


async def test_retries_stop_when_the_circuit_opens_and_circuits_are_per_endpoint(
    flaky: tuple[Flaky, str], serve: Serve, executors: list[HttpExecutor]
) -> None:
    server, url = flaky
    config = local_config(max_endpoint_retries=5, circuit_breaker=breaker(failure_threshold=2))
    ex = HttpExecutor(config)
    executors.append(ex)

    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    ok = web.Application()
    ok.router.add_get("/", hello)
    other = await serve(ok)
    eps = by_id(endpoint("e", url), endpoint("other", f"{other}/"))
    bad, good = await ex.execute(plan(call("e"), call("other")), eps)
    assert bad.attempts == 2
    assert bad.error_category == ErrorCategory.HTTP_5XX
    assert "circuit opened" in (bad.error or "")
    assert server.hits == 2
    assert good.status == EndpointStatus.SUCCESS
    assert ex.circuit_state("other") == "closed"


async def test_disabled_breaker_never_opens(
    flaky: tuple[Flaky, str], executors: list[HttpExecutor]
) -> None:
    server, url = flaky
    config = local_config(
        max_endpoint_retries=0, circuit_breaker=breaker(enabled=False, failure_threshold=1)
    )
    ex = HttpExecutor(config)
    executors.append(ex)
    for _ in range(3):
        await run(ex, url, RecordingEvents())
    assert server.hits == 3
    assert ex.circuit_state("e") == "closed"


def test_the_breakers_remember_only_circuits_that_hold_state() -> None:
    """A worker calls endpoints by the hundred thousand: healthy ones leave nothing behind,
    failures are forgotten once they leave the window, and open circuits are kept."""
    clock = FakeClock()
    changes: list[tuple[str, CircuitState, CircuitState]] = []

    def on_change(endpoint_id: str, old: CircuitState, new: CircuitState) -> None:
        changes.append((endpoint_id, old, new))

    breakers = CircuitBreakers(
        breaker(failure_threshold=2, window_ms=10_000, cooldown_ms=1_000), clock.monotonic
    )

    def call(endpoint_id: str, *, failure: bool) -> None:
        ticket = breakers.admit(endpoint_id, on_change)
        assert ticket is not None
        breakers.record(ticket, failure=failure, on_change=on_change)

    for n in range(5_000):
        call(f"ok-{n}", failure=False)
    assert breakers.tracked == 0

    call("dead", failure=True)
    call("dead", failure=True)
    assert breakers.state("dead") is CircuitState.OPEN
    call("flaky", failure=True)
    assert breakers.tracked == 2
    call("flaky", failure=False)  # its failure is still in the window: kept
    assert breakers.tracked == 2

    clock.advance(11)  # every failure so far has left the window
    call("flaky", failure=True)  # the old failure no longer counts: one in the window
    assert breakers.state("flaky") is CircuitState.CLOSED
    clock.advance(11)
    call("flaky", failure=False)
    assert breakers.tracked == 1  # "dead" stays open until a trial closes it

    for n in range(3_000):  # endpoints that failed once and were never called again
        call(f"once-{n}", failure=True)
        if n % 1_000 == 999:
            clock.advance(11)
    assert breakers.tracked < 2_100  # swept as the table grew: not 3,001
    assert breakers.state("dead") is CircuitState.OPEN
    assert [c for c in changes if c[0] != "dead"] == []
