"""Turning SIGINT/SIGTERM into an asyncio event, for graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable, Iterator

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_set(
    event: asyncio.Event, signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS
) -> Iterator[None]:
    """While the block runs, the signals set `event` instead of raising KeyboardInterrupt or
    killing the process (enter it before starting anything). Where the loop cannot install
    handlers (not the main thread, Windows) the signals keep their default behaviour."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
