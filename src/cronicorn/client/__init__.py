"""The engine's HTTP client for the scheduler API."""

from __future__ import annotations

from cronicorn.client.api_backend import ApiSchedulerBackend

__all__ = ["ApiSchedulerBackend"]
