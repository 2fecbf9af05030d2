"""The service layer: user-facing operations shared by the API, the CLI and the in-process
engine. Each class takes a session factory and owns its transactions.

The names below are imported on first use, so the input/output schemas
(`cronicorn.service.schemas`) can be imported without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = [
    "AIInsights",
    "AlertChannels",
    "Alerts",
    "Dashboard",
    "Endpoints",
    "FieldErrors",
    "History",
    "Jobs",
    "Keys",
    "Principal",
    "Quotas",
    "Services",
    "SigningKeys",
    "StateConflict",
    "WebSessions",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AIInsights": "cronicorn.service.ai_insights",
        "AlertChannels": "cronicorn.service.alert_channels",
        "Alerts": "cronicorn.service.alerts",
        "Dashboard": "cronicorn.service.dashboard",
        "Endpoints": "cronicorn.service.endpoints",
        "FieldErrors": "cronicorn.service.errors",
        "History": "cronicorn.service.history",
        "Jobs": "cronicorn.service.jobs",
        "Keys": "cronicorn.service.keys",
        "Principal": "cronicorn.service.keys",
        "Quotas": "cronicorn.service.quotas",
        "Services": "cronicorn.service.services",
        "SigningKeys": "cronicorn.service.signing",
        "StateConflict": "cronicorn.service.errors",
        "WebSessions": "cronicorn.service.web_sessions",
    },
)

if TYPE_CHECKING:
    from cronicorn.service.ai_insights import AIInsights
    from cronicorn.service.alert_channels import AlertChannels
    from cronicorn.service.alerts import Alerts
    from cronicorn.service.dashboard import Dashboard
    from cronicorn.service.endpoints import Endpoints
    from cronicorn.service.errors import FieldErrors, StateConflict
    from cronicorn.service.history import History
    from cronicorn.service.jobs import Jobs
    from cronicorn.service.keys import Keys, Principal
    from cronicorn.service.quotas import Quotas
    from cronicorn.service.services import Services
    from cronicorn.service.signing import SigningKeys
    from cronicorn.service.web_sessions import WebSessions
