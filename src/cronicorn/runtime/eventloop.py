"""How our processes run their event loop: on uvloop where it is installed.

uvloop (libuv, installed with `uvicorn[standard]` on Linux and macOS) is what `cronicorn
serve` already runs on through uvicorn. The engine's processes spend most of their CPU in
the loop itself and in socket I/O (a claim, an HTTP call per endpoint, a completion per run),
so they run on it too; without it (Windows, a minimal install) the standard loop is used.
`CRONICORN_EVENT_LOOP=asyncio` chooses the standard loop explicitly (to compare, or to rule
uvloop out when debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EVENT_LOOP_ENV = "CRONICORN_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for the standard loop (not installed, or asked for)."""
    if os.environ.get(EVENT_LOOP_ENV, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on the loop `loop_factory()` chooses."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
