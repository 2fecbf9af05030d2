"""WriteBatcher: concurrent writes coalesced into batches, each caller with its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from cronicorn.runtime.batching import WriteBatcher


class Store:
    """A fake flush target that records batches and can be held mid-flush."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def flush(self, items: list[int]) -> list[BaseException | None]:
        self.batches.append(items)
        await self.gate.wait()
        if self.error is not None and len(items) > 1:
            raise self.error
        return [ValueError(f"odd {i}") if i % 2 else None for i in items]


async def test_ready_writes_go_together_and_get_their_own_outcome() -> None:
    store = Store()
    batcher = WriteBatcher(store.flush)

    outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)

    assert store.batches == [[0, 1, 2, 3]]
    assert outcomes[0] is None
    assert str(outcomes[1]) == "odd 1"
    assert outcomes[2] is None


async def test_writes_arriving_during_a_flush_form_the_next_batch() -> None:
    store = Store()
    store.gate.clear()
    batcher = WriteBatcher(store.flush, max_batch=2)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 4, 6)]
    await asyncio.sleep(0.01)
    assert store.batches == [[0]]

    store.gate.set()
    await asyncio.gather(first, *later)

    assert store.batches == [[0], [2, 4], [6]]


async def test_a_failing_batch_is_retried_item_by_item_when_allowed() -> None:
    store = Store()
    store.error = RuntimeError("constraint")
    batcher = WriteBatcher(store.flush)

    outcomes = await asyncio.gather(*(batcher.submit(i) for i in (2, 3)), return_exceptions=True)

    assert store.batches == [[2, 3], [2], [3]]
    assert outcomes[0] is None
    assert isinstance(outcomes[1], ValueError)


async def test_a_whole_batch_error_reaches_every_caller_once() -> None:
    store = Store()
    store.error = ConnectionError("down")
    batcher = WriteBatcher(store.flush, split_on_error=lambda exc: False)

    outcomes = await asyncio.gather(*(batcher.submit(i) for i in (2, 4)), return_exceptions=True)

    assert store.batches == [[2, 4]]
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_a_caller_cancelled_before_the_flush_takes_its_item_out() -> None:
    store = Store()
    store.gate.clear()
    batcher = WriteBatcher(store.flush)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.01)
    dropped = asyncio.ensure_future(batcher.submit(2))
    kept = asyncio.ensure_future(batcher.submit(4))
    await asyncio.sleep(0)
    dropped.cancel()

    store.gate.set()
    await asyncio.gather(first, kept)
    await batcher.drain()

    assert store.batches == [[0], [4]]


async def test_drain_waits_for_everything_queued() -> None:
    store = Store()
    store.gate.clear()
    batcher = WriteBatcher(store.flush)
    writes = [asyncio.ensure_future(batcher.submit(i)) for i in (0, 2)]
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_later(0.01, store.gate.set)

    await batcher.drain()

    assert all(w.done() for w in writes)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        WriteBatcher(Store().flush, max_batch=0)
