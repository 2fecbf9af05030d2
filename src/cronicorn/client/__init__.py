"""The engine's HTTP client for the scheduler API; it imports no server code (no FastAPI, no
SQLAlchemy). Imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = ["ApiSchedulerBackend"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"ApiSchedulerBackend": "cronicorn.client.api_backend"}
)

if TYPE_CHECKING:
    from cronicorn.client.api_backend import ApiSchedulerBackend
