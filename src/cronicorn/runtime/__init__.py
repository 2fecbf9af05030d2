"""Process primitives every layer may use: time (the `Clock` port and `SystemClock`), group
commit (`WriteBatcher`) and the base of typed config sections (`ConfigSection`).

Neutral ground: this package imports nothing of engine/, ai/, executor/ or store/, so the
adapters and the engine can share it without depending on each other. Names are imported
lazily (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Clock": "cronicorn.runtime.clock",
    "SystemClock": "cronicorn.runtime.clock",
    "WriteBatcher": "cronicorn.runtime.batching",
    "ConfigSection": "cronicorn.runtime.config",
}

__all__ = ["Clock", "ConfigSection", "SystemClock", "WriteBatcher"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from cronicorn.runtime.batching import WriteBatcher
    from cronicorn.runtime.clock import Clock, SystemClock
    from cronicorn.runtime.config import ConfigSection
