"""Lease renewal while a job runs.

A lease lasts `stale_lock_threshold_ms`; the keeper extends it every third of that so a
slow job keeps its claim (a run longer than the lease is never claimed twice). Only the
backend saying the lease is gone (`LeaseLostError`: another worker claimed the job, or an
admin force-unlocked it) counts as lost: the keeper logs it, fires `on_lost` (the pipeline
aborts its work) and nothing more may be written.

A backend that cannot be reached is not a lost lease. The keeper retries sooner (every
`RETRY_S`) and renews as soon as the backend answers again — even past the expiry: the
fencing token, not the clock, decides whether the lease is still ours (nobody else can
claim the job while the API is down either).

The pipeline calls `stop()` before it sends the completion: a renewal racing the
completion's lease release would be refused and look like a lost lease.

Most runs end long before their first renewal, so the keeper is a clock timer, not a task:
a renewal task exists only while a renewal is being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from cronicorn.domain.models import Lease
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.errors import LeaseLostError
from cronicorn.runtime.clock import Clock, Timer

logger = logging.getLogger("cronicorn.engine.lease")
RENEWALS_PER_LEASE = 3
RETRY_S = 1.0
"""Delay between renewal attempts while the backend is unreachable."""


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
        self._interval_s = lease_ms / RENEWALS_PER_LEASE / 1000
        self._timer: Timer | None = None
        self._task: asyncio.Task[None] | None = None
        """The renewal being sent, if any."""
        self._stopped = False
        self._unreachable_since_expiry = False
        self._retrying = False
        """The last renewal failed (the backend was unreachable)."""
        self.lost = False

    @property
    def lease(self) -> Lease:
        """The latest renewed lease (same fencing token, later expiry)."""
        return self._lease

    def mark_lost(self) -> None:
        if not self.lost:
            self.lost = True
            self._on_lost()

    async def stop(self) -> None:
        """Stop renewing (idempotent); returns once no renewal is in flight any more."""
        self._stopped = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LeaseKeeper:
        self._arm(self._interval_s)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _arm(self, delay_s: float) -> None:
        if not self._stopped and not self.lost:
            self._timer = self._clock.call_later(delay_s, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._stopped and not self.lost:
            self._task = asyncio.create_task(self._renew(), name="lease-renewal")

    async def _renew(self) -> None:
        """One renewal; then the timer for the next (sooner while the backend is down)."""
        interval_s = self._interval_s
        delay_s = interval_s
        try:
            self._lease = await self._backend.extend(self._lease, self._lease_ms)
        except LeaseLostError as exc:
            logger.warning(
                "lease lost for job %s (run %s): %s",
                self._lease.job_id,
                self._lease.run_id,
                exc,
            )
            self.mark_lost()
        except Exception as exc:
            logger.warning("lease renewal failed for job %s: %s", self._lease.job_id, exc)
            delay_s = min(interval_s, RETRY_S)
            if not self._unreachable_since_expiry and self._clock.now() >= self._lease.expires_at:
                self._unreachable_since_expiry = True
                logger.warning(
                    "lease of job %s expired while the backend was unreachable; the run "
                    "goes on and its fencing token decides whether its results are kept",
                    self._lease.job_id,
                )
        else:
            if self._retrying:
                logger.info("lease of job %s renewed again", self._lease.job_id)
            self._unreachable_since_expiry = False
        self._retrying = delay_s != interval_s
        if self._task is asyncio.current_task():
            self._task = None
        self._arm(delay_s)
