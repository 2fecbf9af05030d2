"""Retry policy: which failed attempts are retried, and how long to wait first.

Retrying is only safe when repeating the request cannot do harm: idempotent methods may be
retried on any transient failure, but a POST/PATCH that reached the server may already have
had its effect, so by default it is retried only when it provably was not sent (connect
errors) or when the server explicitly said "not processed, come back" (429, 503).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from cronicorn.domain.models import ErrorCategory
from cronicorn.executor.config import ExecutionConfig

NON_IDEMPOTENT = frozenset({"POST", "PATCH"})
RETRYABLE_STATUS = frozenset({408, 429})
SAFE_FOR_NON_IDEMPOTENT = frozenset({429, 503})


@dataclass(slots=True)
class AttemptOutcome:
    """What one attempt produced, as far as retrying and the circuit breaker care."""

    category: ErrorCategory | None
    """None: success."""
    status_code: int | None = None
    sent: bool = True
    """False when the request provably never left (connection refused, DNS failure)."""
    retry_after_s: float | None = None
    retryable: bool = False
    """Transient by nature (network, timeout, 5xx, 408, 429), before the method rule."""

    @property
    def breaker_failure(self) -> bool:
        """Counts against the circuit: the server is down, slow or shedding load."""
        return self.category in (ErrorCategory.NETWORK, ErrorCategory.TIMEOUT) or (
            self.status_code is not None and (self.status_code >= 500 or self.status_code == 429)
        )


SUCCESS = AttemptOutcome(None)
"""Shared outcome of every successful attempt (read-only by convention)."""


def status_retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUS


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class RetryPolicy:
    def __init__(self, config: ExecutionConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()

    @property
    def max_attempts(self) -> int:
        return self._config.max_endpoint_retries + 1

    def should_retry(self, method: str, outcome: AttemptOutcome, attempt: int) -> bool:
        """`attempt` is 1-based: the attempt that just failed."""
        if not outcome.retryable or attempt >= self.max_attempts:
            return False
        if method not in NON_IDEMPOTENT or self._config.retry_non_idempotent:
            return True
        return not outcome.sent or outcome.status_code in SAFE_FOR_NON_IDEMPOTENT

    def delay_s(self, attempt: int, outcome: AttemptOutcome) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After (capped)."""
        if outcome.retry_after_s is not None:
            return min(outcome.retry_after_s, self._config.retry_after_cap_ms / 1000)
        ceiling = min(
            self._config.retry_max_delay_ms, self._config.retry_base_delay_ms * 2 ** (attempt - 1)
        )
        return self._rng.uniform(0, ceiling) / 1000
