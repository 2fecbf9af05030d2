"""The service layer: user-facing operations shared by the API, the CLI and the in-process
engine. Each class takes a session factory and owns its transactions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.service.ai_insights import AIInsights
from cronicorn.service.endpoints import Endpoints
from cronicorn.service.errors import FieldErrors, StateConflict
from cronicorn.service.history import History
from cronicorn.service.jobs import Jobs
from cronicorn.service.keys import Keys, Principal
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import utcnow

__all__ = [
    "AIInsights",
    "Endpoints",
    "FieldErrors",
    "History",
    "Jobs",
    "Keys",
    "Principal",
    "Services",
    "StateConflict",
]


@dataclass(frozen=True, slots=True)
class Services:
    """All user-facing services over one database, built by `Services.build`."""

    keys: Keys
    jobs: Jobs
    endpoints: Endpoints
    history: History
    ai: AIInsights

    @classmethod
    def build(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
        *,
        default_budget_usd: float | None = None,
    ) -> Services:
        return cls(
            keys=Keys(sessions),
            jobs=Jobs(sessions, box, clock),
            endpoints=Endpoints(sessions, box, clock),
            history=History(sessions, clock),
            ai=AIInsights(sessions, clock, default_budget_usd),
        )
