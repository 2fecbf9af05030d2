"""Group commit: concurrent writes coalesced into batches, each caller with its own outcome.

Used by the scheduler backends for `complete` (in-process: one database transaction per
batch; over the API: one request per batch), so the per-write fixed costs — transaction,
commit, round trip, statement setup — are paid once per batch instead of once per job.

Policy: at most one flush is in flight. When idle, a write is flushed at once (after
one loop turn, so writes that are ready at the same moment go together) — no added latency
at low load. While a flush is in flight, new writes queue and go together in the next one
(up to `max_batch`). The batching window is therefore the duration of the previous flush:
it grows with load by itself, no timer to tune.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

Flush = Callable[[list[T]], Awaitable[Sequence[BaseException | None]]]
"""Writes a batch; returns one outcome per item, in order: None, or that item's error."""


def _always(_: BaseException) -> bool:
    return True


class WriteBatcher(Generic[T]):
    """Coalesces concurrent `submit` calls into batches for `flush`.

    `submit(item)` returns when the batch holding `item` is written, or raises that item's
    own error. If `flush` raises for a batch of several items and `split_on_error(exc)` is
    true (e.g. a constraint violated by one item), the items are retried one by one so
    that only the culprit fails; for errors that would fail every item (database or API
    down) return False and every caller gets the error at once.

    A caller cancelled before its item is flushed takes the item out; once the batch is
    in flight the write proceeds (the caller just no longer waits for it).
    """

    def __init__(
        self,
        flush: Flush[T],
        *,
        max_batch: int = 128,
        split_on_error: Callable[[BaseException], bool] = _always,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._flush = flush
        self._max_batch = max_batch
        self._split = split_on_error
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        """Flushes done (including single-item retries): for tests and stats."""

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None or self._task.done():
            # A fresh context: the flusher serves many jobs, it must not inherit the
            # first caller's log context (job id, run id).
            self._task = asyncio.create_task(self._run(), context=contextvars.Context())
        await future

    async def drain(self) -> None:
        """Wait until every submitted item is flushed (before closing the store)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                batch = [(item, fut) for item, fut in batch if not fut.done()]
                if batch:
                    await self._flush_batch(batch)
        finally:
            # Only reached with items left if this task was cancelled (loop shutdown).
            for _, future in self._pending:
                future.cancel()
            self._pending.clear()

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        self.batches += 1
        try:
            outcomes = await self._flush([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"flush returned {len(outcomes)} outcomes for {len(batch)}")
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) > 1 and self._split(exc):
                for entry in batch:
                    await self._flush_batch([entry])
                return
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
