"""Counters of the AI planner (SPEC §4 stats, §10 metrics). Each event is counted once.

- `ai_calls`: every HTTP request sent to the model, failed ones included.
- `transport_errors`: requests that failed in transport (timeout, connection, 429, 5xx, other
  HTTP errors); `transport_retries`: the ones followed by a retry. Never counted as malformed.
- `malformed_responses`: replies that arrived but could not be used, whatever the class;
  `invalid_by_kind` splits them into refusal / truncated / schema_invalid / semantic_invalid.
- `repair_attempts`: re-asks sent; `repair_successes`: phases that ended valid after at least
  one re-ask; `repair_failures`: phases that re-asked and still ended invalid.
- `salvaged`: non-strict replies fixed locally (not counted as malformed).
- `fallbacks`: decisions handed to the rules planner (AI failure or token budget);
  `budget_fallbacks` is the token-budget share of them.
- `tokens`: usage summed over every reply, repairs and failed attempts included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from cronicorn.domain.models import TokenUsage


class InvalidKind(StrEnum):
    """Why a reply that arrived was unusable."""

    REFUSAL = "refusal"
    TRUNCATED = "truncated"
    SCHEMA_INVALID = "schema_invalid"
    SEMANTIC_INVALID = "semantic_invalid"


@dataclass
class PlannerStats:
    ai_calls: int = 0
    transport_errors: int = 0
    transport_retries: int = 0
    malformed_responses: int = 0
    invalid_by_kind: dict[str, int] = field(
        default_factory=lambda: {kind.value: 0 for kind in InvalidKind}
    )
    repair_attempts: int = 0
    repair_successes: int = 0
    repair_failures: int = 0
    salvaged: int = 0
    fallbacks: int = 0
    budget_fallbacks: int = 0
    tokens: TokenUsage = field(default_factory=TokenUsage)

    def count_invalid(self, kind: InvalidKind) -> None:
        self.malformed_responses += 1
        self.invalid_by_kind[kind.value] += 1

    def as_dict(self) -> dict[str, Any]:
        """A plain snapshot (for engine stats, heartbeats and metrics)."""
        out = asdict(self)
        out["tokens"] = asdict(self.tokens) | {"total": self.tokens.total}
        return out


class AIObserver(Protocol):
    """Receives every AI request and repair as it happens (Prometheus `EngineMetrics`
    satisfies it). `phase` is `plan` or `schedule`; `outcome` one of success,
    invalid_output, timeout, rate_limited, error; repair outcomes success or failure."""

    def observe_ai_call(
        self, phase: str, outcome: str, usage: TokenUsage, latency_s: float
    ) -> None: ...

    def observe_repair(self, outcome: str) -> None: ...
