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
from cronicorn.runtime.clock import Clock

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
        self._task: asyncio.Task[None] | None = None
        self._renewing = False
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
        """Stop renewing (idempotent); returns once no renewal is in flight any more.
        A keeper that is only sleeping (every run shorter than a third of its lease) is
        cancelled without waiting a loop turn for the cancellation to land: it sends
        nothing more, since it can only wake up to the cancellation."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if self._renewing:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._renew_forever(), name="lease-renewal")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _renew_forever(self) -> None:
        interval_s = self._lease_ms / RENEWALS_PER_LEASE / 1000
        delay_s = interval_s
        unreachable_since_expiry = False
        while not self.lost:
            await self._clock.sleep(delay_s)
            self._renewing = True
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
                if not unreachable_since_expiry and self._clock.now() >= self._lease.expires_at:
                    unreachable_since_expiry = True
                    logger.warning(
                        "lease of job %s expired while the backend was unreachable; the run "
                        "goes on and its fencing token decides whether its results are kept",
                        self._lease.job_id,
                    )
            else:
                if delay_s != interval_s:
                    logger.info("lease of job %s renewed again", self._lease.job_id)
                delay_s = interval_s
                unreachable_since_expiry = False
            finally:
                self._renewing = False
