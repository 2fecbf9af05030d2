"""Process primitives every layer may use: time (the `Clock` port and `SystemClock`), group
commit (`WriteBatcher`), the base of typed config sections (`ConfigSection`) and a run's
abort event with callbacks (`AbortSignal`).

Neutral ground: this package imports nothing of engine/, ai/, executor/ or store/, so the
adapters and the engine can share it without depending on each other. Names are imported
lazily (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AbortSignal": "cronicorn.runtime.abort",
    "Clock": "cronicorn.runtime.clock",
    "SystemClock": "cronicorn.runtime.clock",
    "WriteBatcher": "cronicorn.runtime.batching",
    "ConfigSection": "cronicorn.runtime.config",
}

__all__ = ["AbortSignal", "Clock", "ConfigSection", "SystemClock", "WriteBatcher"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from cronicorn.runtime.abort import AbortSignal
    from cronicorn.runtime.batching import WriteBatcher
    from cronicorn.runtime.clock import Clock, SystemClock
    from cronicorn.runtime.config import ConfigSection
