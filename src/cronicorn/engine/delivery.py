"""Delivering a finished run's completion through a backend outage.

A run's results are worth keeping: an endpoint was called, maybe with side effects, and
running it again is a duplicate. So while the backend is unreachable (the API restarting,
the database failing over: `BackendUnavailableError`), the worker keeps the completion and
sends it again with capped, jittered backoff until the backend answers. The answer decides:
written (also when the first attempt had landed and only its response was lost), or
`LeaseLostError` when another worker claimed the job meanwhile. Time alone never throws
the result away: the store accepts a late completion whose fencing token is still the
newest. Any other error is raised at once (the pipeline then records the failure).

The wait is bounded by the engine's shutdown (which cancels the run after its grace
period) — there is nothing better to do with a result than to deliver it.

While any completion waits, the engine holds its next claim (`DeliveryGate`): when the API
comes back after an outage longer than the lease, a claim landing before the completions
could take over one of their jobs and run it a second time.
"""

from __future__ import annotations

import asyncio
import logging
import random

from cronicorn.domain.models import Lease, RunCompletion
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.errors import BackendUnavailableError
from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine.delivery")
FIRST_DELAY_S = 0.2
MAX_DELAY_S = 2.0
"""Short: once the API is back, the completion should land before the lease's expiry lets
another worker claim the job."""
LOG_EVERY = 10


class DeliveryGate:
    """How many completions are waiting for an unreachable backend, and a way to wait until
    none is."""

    def __init__(self) -> None:
        self._waiting = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def waiting(self) -> int:
        return self._waiting

    def enter(self) -> None:
        self._waiting += 1
        self._idle.clear()

    def leave(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0:
            self._waiting = 0
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


async def deliver_completion(
    backend: SchedulerBackend,
    lease: Lease,
    completion: RunCompletion,
    clock: Clock,
    rng: random.Random | None = None,
    gate: DeliveryGate | None = None,
) -> int:
    """Send `completion` until the backend answers; returns the attempts it took. From its
    first failed attempt until it is answered, the completion counts as waiting in `gate`."""
    rand = rng
    attempt = 0
    started = clock.monotonic()
    waiting = False
    try:
        while True:
            attempt += 1
            try:
                await backend.complete(lease, completion)
            except BackendUnavailableError as exc:
                if gate is not None and not waiting:
                    gate.enter()
                    waiting = True
                _log_failure(lease, attempt, exc)
                ceiling = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** min(attempt - 1, 10))
                if rand is None:  # only on an outage: seeding one costs as much as the send
                    rand = random.Random()
                await clock.sleep(rand.uniform(ceiling / 2, ceiling))
                continue
            if attempt > 1:
                logger.info(
                    "completion of job %s run %s delivered after %d attempts (%.1f s)",
                    lease.job_id,
                    lease.run_id,
                    attempt,
                    clock.monotonic() - started,
                )
            return attempt
    finally:
        if waiting and gate is not None:
            gate.leave()


def _log_failure(lease: Lease, attempt: int, exc: Exception) -> None:
    if attempt == 1 or attempt % LOG_EVERY == 0:
        logger.warning(
            "completion of job %s run %s not delivered (attempt %d): %s; kept and retried "
            "until the backend answers",
            lease.job_id,
            lease.run_id,
            attempt,
            exc,
        )
