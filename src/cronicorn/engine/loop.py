"""The engine loop and its idle wait (SPEC §4).

    claim now (first cycle at once) → claimed a full batch? claim again as slots free up
                                    → else idle until the earliest of:
                                         the next known due time (backend.next_due_at),
                                         a wake-up (long-poll claim / engine.wake()),
                                         processing_interval_ms.

While idle with `claim_wait_ms` > 0 the engine waits *inside* a long-poll claim (bounded by
the next due time), so a new or run-now job is picked up within milliseconds and a job due
in 2 s starts on time even with a 60 s processing interval. With `claim_wait_ms` = 0 it
sleeps precisely until the next due time instead. Claims are serialised by the dispatcher
(`cronicorn.engine.dispatcher`), so the loop never overlaps itself.

Claims are made ahead (`scheduler.claim_ahead_ms`, the window W): a claim takes every job due
within W, and the dispatcher starts each claimed job at its own due time. So the claim's
latency — a write transaction and the context reads, plus a round trip through the API —
happens before the due time instead of after it, and a due job starts within a timer's
precision of it. The loop claims when the next job is W/2 from its due time (a long-poll's
claim, for jobs not known yet, when it enters the window): under a steady stream each claim
then takes half a window's jobs rather than one claim per job.

Every claim is a write transaction, so the loop avoids the ones that cannot find anything:
after a claim that left slots free it asks for the next due time before claiming again
(at once only if something is due now); a job due within `SHORT_WAIT_S` is waited for
with a plain sleep (a long-poll would start with a claim that finds nothing); and when a
sleep or long-poll ends at a known due time, the claim follows without asking again. With
jobs due every few milliseconds this is one claim and one due-time read per claim batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cronicorn.engine.config import SchedulerConfig
    from cronicorn.engine.dispatcher import Dispatch, Dispatcher
    from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine.loop")
SPIN_GUARD_BASE_S = 0.02
"""When the backend says a job is due but a claim found none (clock skew, a race), wait a
little — doubling up to 64 times — instead of spinning."""
MAX_GUARD_DOUBLINGS = 6
ERROR_BACKOFF_BASE_S = 0.25
SHORT_WAIT_S = 0.05
"""A job due this soon is waited for with a sleep rather than a long-poll (whose first
claim would find nothing); a job created meanwhile elsewhere waits at most this long more."""
DUE_MARGIN_S = 0.001
"""Sleeps until a due time end this much later, so the claim that follows surely sees the
job as due (an early wake-up would find nothing and back off through the spin guard)."""


async def run_loop(dispatcher: Dispatcher, idle: IdleWaiter, stopping: asyncio.Event) -> None:
    """Claim and wait, until `stopping` is set (see the module docstring)."""
    polled: Dispatch | None = None  # a long-poll's claim that the loop has not judged yet
    while not stopping.is_set():
        if await dispatcher.wait_for_slot() == 0:
            break
        if polled is None:
            idle.clear_wake()
            dispatch = idle.observe(await dispatcher.dispatch(wait_ms=0, count_empty=True))
        else:
            dispatch, polled = polled, None
        if dispatch.claimed and dispatch.claimed >= dispatch.limit:
            continue  # probably more due: claim again as soon as a slot is free
        polled = await idle.wait_for_work(dispatch)


class IdleWaiter:
    """Sleeps between claims; woken by `stopping`, `wake()` (engine.wake()) or a long-poll
    claim. Its long-polls are the dispatcher's claims; `next_due_at` is the backend's."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        next_due_at: Callable[[], Awaitable[datetime | None]],
        clock: Clock,
        scheduler: SchedulerConfig,
        stopping: asyncio.Event,
    ) -> None:
        self._dispatcher = dispatcher
        self._next_due_at = next_due_at
        self._clock = clock
        self._scheduler = scheduler
        self._stopping = stopping
        self._wake = asyncio.Event()
        self._empty_streak = 0
        self._error_streak = 0

    def wake(self) -> None:
        self._wake.set()

    def clear_wake(self) -> None:
        self._wake.clear()

    def observe(self, dispatch: Dispatch) -> Dispatch:
        """Count the loop's claims: one that found jobs ends both streaks (empty claims for
        the spin guard, failed ones for the error backoff)."""
        if dispatch.claimed:
            self._empty_streak = 0
            self._error_streak = 0
        elif dispatch.failed:
            self._error_streak += 1
        return dispatch

    async def wait_for_work(self, after: Dispatch) -> Dispatch | None:
        """Wait until a claim is worth making. Returns the long-poll's dispatch when one
        claimed jobs (the loop judges it instead of claiming at once), else None: claim
        now."""
        clock = self._clock
        interval_s = self._scheduler.processing_interval_ms / 1000
        if after.failed:
            backoff_s = ERROR_BACKOFF_BASE_S * 2 ** min(max(self._error_streak - 1, 0), 10)
            await self.sleep(min(interval_s, backoff_s))
            return None
        deadline = clock.monotonic() + interval_s
        ahead_s = self._scheduler.claim_ahead_ms / 1000
        first = True
        while not self._stopping.is_set():
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return None
            due_in = await self._due_in()
            # Claim once the next job is half the claim-ahead window from its due time; the
            # claim then takes every job due within the whole window, so under a steady
            # stream each claim takes half a window's jobs, not the one that just came in.
            claim_in = None if due_in is None else due_in - ahead_s / 2
            wait_s = remaining if claim_in is None else min(remaining, claim_in)
            guard = wait_s <= 0
            if guard and (after.claimed or not first):
                return None  # due now: claim again (the guard is for claims that found none)
            if guard:
                wait_s = self._spin_guard(remaining)
            first = False
            # A job due right behind the window is waited for with a sleep: a long-poll
            # would claim it (alone) the moment it enters the window.
            soon = due_in is not None and due_in <= ahead_s + SHORT_WAIT_S
            if not guard and not soon:
                polled = await self._long_poll(wait_s)
                if polled is not None and (polled.claimed or polled.failed):
                    return polled if polled.claimed else None
                if polled is not None:
                    continue  # the long-poll ended empty: ask for the next due time again
            if not guard and wait_s == claim_in:
                wait_s += DUE_MARGIN_S
            await self.sleep(wait_s)
            return None  # woken, stopped, or at the due time / the interval's end: claim
        return None

    async def _long_poll(self, wait_s: float) -> Dispatch | None:
        """Wait inside a claim when enabled; its dispatch, or None when a long-poll does
        not apply (sleep instead)."""
        claim_wait_ms = self._scheduler.claim_wait_ms
        if claim_wait_ms <= 0 or wait_s < 0.002 or self._dispatcher.free_slots == 0:
            return None
        wait_ms = max(1, int(min(claim_wait_ms, wait_s * 1000)))
        return self.observe(await self._dispatcher.dispatch(wait_ms=wait_ms, count_empty=False))

    def _spin_guard(self, remaining: float) -> float:
        self._empty_streak += 1
        doublings = min(self._empty_streak, MAX_GUARD_DOUBLINGS)
        return min(remaining, SPIN_GUARD_BASE_S * float(2**doublings))

    async def _due_in(self) -> float | None:
        """Seconds until the earliest claimable job is due (None: nothing scheduled)."""
        try:
            due_at = await self._next_due_at()
        except Exception as exc:
            logger.debug("next_due_at failed: %s", exc)
            return None
        if due_at is None:
            return None
        return (due_at - self._clock.now()).total_seconds()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless woken or stopped first. True when woken/stopped."""
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        stopped = asyncio.ensure_future(self._stopping.wait())
        done, pending = await asyncio.wait(
            {sleeper, woken, stopped}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if woken in done:
            self._wake.clear()
        return sleeper not in done
