"""Clients of the REST API; they import no server code (no FastAPI, no SQLAlchemy).

`ApiSchedulerBackend` is the engine's `SchedulerBackend` over `/api/scheduler/*`;
`UserApiClient` serves the CLI, the demo and the MCP stdio server. Both send their requests
through one `ApiTransport` each (`client/transport.py`). Imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = ["ApiError", "ApiSchedulerBackend", "UserApiClient"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ApiError": "cronicorn.client.errors",
        "ApiSchedulerBackend": "cronicorn.client.api_backend",
        "UserApiClient": "cronicorn.client.user_api",
    },
)

if TYPE_CHECKING:
    from cronicorn.client.api_backend import ApiSchedulerBackend
    from cronicorn.client.errors import ApiError
    from cronicorn.client.user_api import UserApiClient
