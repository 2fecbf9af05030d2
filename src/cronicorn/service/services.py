"""`Services`: every user-facing service over one database, built in one call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.alerting.config import AlertSettings
from cronicorn.service.ai_insights import AIInsights
from cronicorn.service.alert_channels import AlertChannels
from cronicorn.service.alerts import Alerts
from cronicorn.service.dashboard import Dashboard
from cronicorn.service.endpoints import Endpoints
from cronicorn.service.history import History
from cronicorn.service.jobs import Jobs
from cronicorn.service.keys import Keys
from cronicorn.service.quotas import Quotas
from cronicorn.service.signing import SigningKeys
from cronicorn.service.web_sessions import WebSessions
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import utcnow


@dataclass(frozen=True, slots=True)
class Services:
    """All user-facing services over one database, built by `Services.build`."""

    keys: Keys
    jobs: Jobs
    endpoints: Endpoints
    history: History
    alert_channels: AlertChannels
    alerts: Alerts
    signing: SigningKeys
    dashboard: Dashboard
    web_sessions: WebSessions
    ai: AIInsights

    @classmethod
    def build(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
        alert_settings: AlertSettings | None = None,
        quotas: Quotas | None = None,
        *,
        default_budget_usd: float | None = None,
    ) -> Services:
        quotas = quotas or Quotas()
        keys = Keys(sessions)
        return cls(
            keys=keys,
            jobs=Jobs(sessions, box, clock, quotas),
            endpoints=Endpoints(sessions, box, clock, quotas),
            history=History(sessions, clock, quotas),
            signing=SigningKeys(sessions, box, clock),
            alert_channels=AlertChannels(sessions, box, alert_settings, clock),
            alerts=Alerts(sessions, clock),
            dashboard=Dashboard(sessions, clock),
            web_sessions=WebSessions(sessions, keys, clock),
            ai=AIInsights(sessions, clock, default_budget_usd),
        )
