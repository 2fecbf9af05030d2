"""Storage: tables, migrations and the repositories (all claim/lease SQL lives here).

The names below are imported on first use (SQLAlchemy loads only when the store is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__all__ = ["JobChangeListener", "SchedulerRepository", "WorkerInfo", "notify_jobs_changed"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "JobChangeListener": "cronicorn.store.notify",
        "notify_jobs_changed": "cronicorn.store.notify",
        "SchedulerRepository": "cronicorn.store.scheduler_repo",
        "WorkerInfo": "cronicorn.store.workers",
    },
)

if TYPE_CHECKING:
    from cronicorn.store.notify import JobChangeListener, notify_jobs_changed
    from cronicorn.store.scheduler_repo import SchedulerRepository
    from cronicorn.store.workers import WorkerInfo
