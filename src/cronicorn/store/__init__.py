"""Storage: tables, migrations and the repositories (all claim/lease SQL lives here)."""

from cronicorn.store.notify import JobChangeListener, notify_jobs_changed
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.workers import WorkerInfo

__all__ = ["JobChangeListener", "SchedulerRepository", "WorkerInfo", "notify_jobs_changed"]
