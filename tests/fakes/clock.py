"""The one fake for the `Clock` port: time moves only when a test says so.

`now()` and `monotonic()` move together, by `advance()`. `sleep` waits until the clock has
been advanced past its deadline — or, with `auto_advance=True`, moves the clock itself and
returns at once (for code under test that backs off or waits between tries). Every sleep is
recorded in `sleeps`. Code that takes a plain time function (`Callable[[], float]`) gets
`clock.monotonic`.

Code that reads the real clock itself (a CLI command, an API server) is waited for with
`until_past`, a deadline rather than a guessed delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """`now()` and `monotonic()` move together; `sleep` waits for `advance` unless
    `auto_advance`."""

    def __init__(self, start: datetime = T0, *, auto_advance: bool = False) -> None:
        self._now = start
        self._mono = 1_000.0
        self._auto = auto_advance
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0 or self._auto:
            self.advance(max(0.0, seconds))
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, future))
        try:
            await future
        finally:
            self._sleepers = [(d, f) for d, f in self._sleepers if f is not future]

    def call_later(self, seconds: float, callback: Callable[[], None]) -> asyncio.Task[None]:
        """A `sleep` (recorded, released by `advance`) in a task, then `callback`."""

        async def fire() -> None:
            await self.sleep(seconds)
            callback()

        return asyncio.ensure_future(fire())

    @property
    def sleepers(self) -> int:
        """Sleeps now waiting for the clock to be advanced."""
        return sum(1 for _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and release every sleeper whose deadline has passed."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        for deadline, future in self._sleepers:
            if deadline <= self._mono and not future.done():
                future.set_result(None)


async def until_past(moment: datetime) -> None:
    """Return once the real clock has passed `moment` (at once if it has already)."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.001)
    assert datetime.now(UTC) > moment
