"""The REST API (FastAPI). Build it with `create_app(settings)`.

`create_app` is imported on first use, so importing a submodule (or `cronicorn.api` itself)
does not load the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = ["create_app"]

__getattr__, __dir__ = lazy_exports(__name__, {"create_app": "cronicorn.api.app"})

if TYPE_CHECKING:
    from cronicorn.api.app import create_app
