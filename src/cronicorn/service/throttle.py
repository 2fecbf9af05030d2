"""Throttling: failed authentication per client address, and a request budget per key.

Both are fixed-window counters in the database (`cronicorn.store.rate_limits`), so N API
replicas on one PostgreSQL database share one limit instead of granting N times as much.
The hot path costs one statement per request (an atomic upsert on the key's counter); keys
whose scope has no budget (by default `engine`, so engines claiming and completing thousands
of jobs a second are never slowed) cost nothing.

Any sign-in surface (the REST API, the dashboard) uses the same three calls:

    await throttle.check_failed_auth(client)   # before checking a presented credential
    await throttle.record_failed_auth(client)  # after a credential was refused
    await throttle.spend(principal)            # once per authenticated request

`check_failed_auth` and `spend` raise `Throttled` (HTTP 429 with `Retry-After`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cronicorn.domain.models import Scope
from cronicorn.errors import CronicornError
from cronicorn.service.keys import Principal
from cronicorn.store.rate_limits import RateLimitStore

log = logging.getLogger(__name__)

DEFAULT_WINDOW_S = 60
DEFAULT_AUTH_FAILURES = 20
DEFAULT_USER_BUDGET = 600
DEFAULT_ADMIN_BUDGET = 600
DEFAULT_ENGINE_BUDGET = 0


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits per fixed window of `window_s` seconds; 0 switches a limit off."""

    window_s: int = DEFAULT_WINDOW_S
    auth_failures: int = DEFAULT_AUTH_FAILURES
    """Failed authentications per client address and window; the next attempt is a 429."""
    user: int = DEFAULT_USER_BUDGET
    """Requests per `user` key and window."""
    admin: int = DEFAULT_ADMIN_BUDGET
    """Requests per `admin` key and window."""
    engine: int = DEFAULT_ENGINE_BUDGET
    """Requests per `engine` key and window (0: unlimited, the default)."""

    def budget(self, scope: Scope) -> int:
        return {Scope.USER: self.user, Scope.ADMIN: self.admin, Scope.ENGINE: self.engine}[scope]


class Throttled(CronicornError):
    """Too many requests: retry after `retry_after_s` seconds (the window's end)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttle:
    def __init__(
        self,
        store: RateLimitStore,
        limits: RateLimits = RateLimits(),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.limits = limits
        self._time = wall_clock
        self._pruned: datetime | None = None

    def _window(self) -> tuple[datetime, int]:
        """The current window's start and the whole seconds until it ends (at least 1)."""
        now = self._time()
        width = self.limits.window_s
        start = math.floor(now / width) * width
        return datetime.fromtimestamp(start, UTC), max(1, math.ceil(start + width - now))

    async def check_failed_auth(self, client: str) -> None:
        """Raise `Throttled` while `client` is over its failed-authentication limit."""
        limit = self.limits.auth_failures
        if limit <= 0:
            return
        start, retry_after = self._window()
        if await self._store.count(_auth_bucket(client), start) >= limit:
            raise Throttled("too many failed authentication attempts", retry_after)

    async def record_failed_auth(self, client: str) -> None:
        """Count one refused credential presented by `client`."""
        if self.limits.auth_failures <= 0:
            return
        start, _ = self._window()
        await self._store.hit(_auth_bucket(client), start)
        await self._prune_finished(start)

    async def spend(self, principal: Principal) -> None:
        """Count one request of the principal's key; `Throttled` once its budget is spent."""
        budget = self.limits.budget(principal.scope)
        if budget <= 0:
            return
        start, retry_after = self._window()
        used = await self._store.hit(f"key:{principal.key_id}", start)
        if used == 1:
            await self._prune_finished(start)
        if used > budget:
            raise Throttled(
                f"request budget of this key spent ({budget} per {self.limits.window_s} s)",
                retry_after,
            )

    async def _prune_finished(self, start: datetime) -> None:
        """About once per window and process, drop counters of finished windows (buckets
        that went quiet are never pruned by their own next hit). Best effort."""
        if self._pruned == start:
            return
        self._pruned = start
        try:
            await self._store.prune(start)
        except Exception as exc:  # another replica pruning the same rows: it did the work
            log.debug("rate-limit pruning skipped: %s", exc)


def _auth_bucket(client: str) -> str:
    return f"auth:{client[:150]}"
