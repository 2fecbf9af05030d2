"""`AbortSignal`: still an asyncio.Event, plus callbacks run once when it is set."""

from __future__ import annotations

import asyncio

from cronicorn.runtime.abort import AbortSignal


async def test_callbacks_run_once_on_set_and_waiters_wake() -> None:
    signal = AbortSignal()
    calls: list[str] = []
    kept, dropped = (lambda: calls.append("kept")), (lambda: calls.append("dropped"))
    signal.add_callback(kept)
    signal.add_callback(dropped)
    signal.remove_callback(dropped)
    signal.remove_callback(dropped)  # a second removal is a no-op
    waiter = asyncio.ensure_future(signal.wait())
    await asyncio.sleep(0)
    assert calls == []
    assert not waiter.done()

    signal.set()
    signal.set()
    assert calls == ["kept"]
    assert await asyncio.wait_for(waiter, 1) is True

    signal.add_callback(lambda: calls.append("late"))  # already set: runs at once
    assert calls == ["kept", "late"]
