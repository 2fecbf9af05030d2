"""`AbortSignal`: an `asyncio.Event` that also runs callbacks when it is set.

A run's abort (shutdown, lost lease) must stop its calls in flight. Waiting for the event in
a task of its own costs a task per run that almost never wakes up; code that only has to
react registers a callback here instead. It is still an `asyncio.Event` (`wait`, `is_set`),
so callers that take an Event accept it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["AbortSignal"]


class AbortSignal(asyncio.Event):
    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        """Set the event (waking its waiters), then run each registered callback once."""
        if self.is_set():
            return
        super().set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the signal is set (at once if it already is)."""
        if self.is_set():
            callback()
        else:
            self._callbacks.append(callback)

    def remove_callback(self, callback: Callable[[], None]) -> None:
        """Forget `callback` (no-op if it ran or was never added)."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)
