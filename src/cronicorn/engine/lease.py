"""Lease renewal while a job runs.

A lease lasts `stale_lock_threshold_ms`; the keeper extends it every third of that so a
slow job keeps its claim. If the backend says the lease is gone (LeaseLostError), or the
lease ran out while renewals kept failing, another worker may already own the job: the
keeper fires `on_lost` (the pipeline aborts its work) and nothing more may be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from cronicorn.domain.models import Lease
from cronicorn.engine.ports import Clock, SchedulerBackend
from cronicorn.errors import LeaseLostError

logger = logging.getLogger("cronicorn.engine.lease")


class LeaseKeeper:
    def __init__(
        self,
        backend: SchedulerBackend,
        lease: Lease,
        lease_ms: int,
        clock: Clock,
        on_lost: Callable[[], None],
    ) -> None:
        self._backend = backend
        self._lease = lease
        self._lease_ms = lease_ms
        self._clock = clock
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self.lost = False

    @property
    def lease(self) -> Lease:
        """The latest renewed lease (same fencing token, later expiry)."""
        return self._lease

    def mark_lost(self) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost()

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._renew_forever(), name="lease-renewal")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _renew_forever(self) -> None:
        interval_s = self._lease_ms / 3 / 1000
        while not self.lost:
            await self._clock.sleep(interval_s)
            try:
                self._lease = await self._backend.extend(self._lease, self._lease_ms)
            except LeaseLostError:
                logger.warning(
                    "lease lost for job %s (run %s)", self._lease.job_id, self._lease.run_id
                )
                self.mark_lost()
            except Exception as exc:
                # Transient: try again next tick, unless the lease has run out meanwhile.
                logger.warning("lease renewal failed for job %s: %s", self._lease.job_id, exc)
                if self._clock.now() >= self._lease.expires_at:
                    self.mark_lost()
