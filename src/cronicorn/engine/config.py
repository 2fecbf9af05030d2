"""Typed engine configuration (SPEC §8). Every field is used somewhere; missing fields
take defaults. `EngineConfig.model_validate(dict)` accepts the seed's nested dict shape.

The adapters' sections live with their adapters (`cronicorn.ai.config`,
`cronicorn.executor.config`), so that the adapters do not depend on the engine;
`EngineConfig` composes them with the engine's own sections below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from cronicorn.ai.config import AIAgentConfig, RulesStrategy
from cronicorn.executor.config import ExecutionConfig
from cronicorn.runtime.config import ConfigSection
from cronicorn.wire.scheduler import MAX_AHEAD_MS

Hook = Callable[..., Any]
DEFAULT_CLAIM_AHEAD_MS = 200
"""Covers a claim's latency through the API under load (p99 tens of ms), with room to
spare; short enough that a job is rarely leased before an edit or pause meant for it."""


class MetricsConfig(ConfigSection):
    enabled: bool = True
    track_token_usage: bool = True
    """Off: no token counts anywhere (stats, Prometheus, runs, job totals; no daily budgets)."""
    port: int | None = Field(None, ge=0, le=65_535)
    """Serve Prometheus metrics and /health on this port (engine process)."""
    per_job_labels: bool = False
    """Opt in to job/endpoint id labels (unbounded cardinality)."""


class SchedulerConfig(ConfigSection):
    max_batch_size: int = Field(20, ge=1, le=10_000)
    processing_interval_ms: int = Field(60_000, ge=10, le=86_400_000)
    """Longest idle sleep between cycles."""
    job_concurrency: int = Field(10, ge=1, le=10_000)
    stale_lock_threshold_ms: int = Field(30_000, ge=1_000)
    """Lease length: how long a crashed worker's jobs wait before another worker may claim
    them. Renewed every third of it while a job runs, so runs may last longer."""
    shutdown_grace_ms: int = Field(30_000, ge=0)
    claim_wait_ms: int = Field(30_000, ge=0, le=300_000)
    """Longest a claim may long-poll for a job to become due."""
    claim_ahead_ms: int = Field(DEFAULT_CLAIM_AHEAD_MS, ge=0, le=MAX_AHEAD_MS)
    """Claim ahead: the loop leases a job up to this long before its due time and starts it
    at the due time, so the claim's own latency (a write transaction and the context reads,
    over the API a round trip too) is not added to the job's lag. 0: claim at the due time.
    A job paused within this window before its due time still runs once (as if the pause
    came just after the run started); the pause applies from the next run."""
    heartbeat_interval_ms: int = Field(10_000, ge=100)
    warn_failure_ratio: float = Field(0.25, ge=0.0, le=1.0)
    critical_failure_ratio: float = Field(0.5, ge=0.0, le=1.0)
    default_interval_ms: int = Field(3_600_000, ge=1_000)
    rules_strategy: RulesStrategy = "sequential"
    worker_id: str | None = None

    @model_validator(mode="after")
    def _ratios_ordered(self) -> SchedulerConfig:
        if self.warn_failure_ratio > self.critical_failure_ratio:
            raise ValueError("warn_failure_ratio must be <= critical_failure_ratio")
        if self.claim_ahead_ms >= self.stale_lock_threshold_ms:
            raise ValueError("claim_ahead_ms must be less than stale_lock_threshold_ms")
        return self


class EventsConfig(ConfigSection):
    """Hooks; each is isolated (a raising hook is logged and ignored). Sync or async."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    on_cycle_start: Hook | None = None
    on_cycle_end: Hook | None = None
    on_job_start: Hook | None = None
    on_job_end: Hook | None = None
    on_plan: Hook | None = None
    on_schedule: Hook | None = None
    on_endpoint_progress: Hook | None = None
    on_retry_attempt: Hook | None = None
    on_retry_exhausted: Hook | None = None
    on_circuit_state_change: Hook | None = None
    on_escalation: Hook | None = None
    on_abort: Hook | None = None
    on_fallback: Hook | None = None
    on_error: Hook | None = None


class LoggerConfig(ConfigSection):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of noisy per-attempt lines kept."""


class EngineConfig(ConfigSection):
    ai_agent: AIAgentConfig = AIAgentConfig()
    execution: ExecutionConfig = ExecutionConfig()
    metrics: MetricsConfig = MetricsConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    events: EventsConfig = EventsConfig()
    logger: LoggerConfig = LoggerConfig()
