"""A store-only helper: one completion written as the backend writes it (seeds are in
`tests.fakes.seed`, read-backs in `tests.fakes.rows`)."""

from __future__ import annotations

from datetime import datetime

from cronicorn.domain.models import Lease, RunCompletion
from cronicorn.store.scheduler_repo import SchedulerRepository


async def complete_run(
    repo: SchedulerRepository, lease: Lease, completion: RunCompletion, now: datetime | None = None
) -> None:
    """One completion as the backend writes it (a batch of one); raises if fenced out."""
    [lost] = await repo.complete_runs([(lease, completion)], now)
    if lost is not None:
        raise lost
