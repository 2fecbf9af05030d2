"""The REST API (FastAPI). Build it with `create_app(settings)`."""

from __future__ import annotations

from cronicorn.api.app import create_app

__all__ = ["create_app"]
