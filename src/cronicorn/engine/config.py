"""Typed engine configuration (SPEC §8). Every field is used somewhere; missing fields
take defaults. `EngineConfig.model_validate(dict)` accepts the seed's nested dict shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from cronicorn.domain.pricing import DEFAULT_PRICES, ModelPrice, price_for

Hook = Callable[..., Any]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PromptOptimizationConfig(_Section):
    enabled: bool = True
    max_prompt_tokens: int = Field(12_000, ge=500, le=1_000_000)
    """Budget per prompt; the oldest history is dropped first, system messages kept."""
    max_history_messages: int = Field(100, ge=0, le=10_000)
    max_result_chars: int = Field(2_000, ge=0, le=1_000_000)
    """Fresh response bodies are compacted (structure-aware) to about this many characters
    inside prompts; errors are cut to it."""


class ModelPriceConfig(_Section):
    """US dollars per million tokens (see `cronicorn.domain.pricing`)."""

    input: float = Field(ge=0.0, le=10_000.0)
    cached_input: float | None = Field(None, ge=0.0, le=10_000.0)
    """None: the input price (no cache discount)."""
    output: float = Field(ge=0.0, le=10_000.0)


class AIAgentConfig(_Section):
    model: str = "gpt-4o"
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    api_key: SecretStr | None = None
    """None → the rules planner is used (with a warning)."""
    base_url: str | None = None
    max_retries: int = Field(2, ge=0, le=10)
    """Transport retries (timeout, connection, 429, 5xx) per AI call."""
    timeout_ms: int = Field(60_000, ge=100, le=600_000)
    max_repair_attempts: int = Field(2, ge=0, le=10)
    strict: bool = True
    """Strict: invalid output is repaired by re-asking. Non-strict: salvaged locally."""
    action_confidence: float = Field(0.8, ge=0.0, le=1.0)
    """Minimum confidence for a `pause_job` recommendation to pause the job."""
    max_output_tokens: int = Field(2_000, ge=64, le=100_000)
    mode: Literal["every_run", "on_change"] = "on_change"
    """`every_run`: both AI phases on every run. `on_change`: the model is asked only when a
    trigger fires; otherwise the last AI decision is reused (see docs/ai.md)."""
    decision_ttl_ms: int = Field(3_600_000, ge=1_000, le=30 * 86_400_000)
    """Longest an AI decision is reused (the model may say less with `valid_for_ms`)."""
    change_threshold: float = Field(0.2, ge=0.0, le=100.0)
    """Relative change of a number in a response that counts as material (0.2 = 20 %)."""
    prompt_optimization: PromptOptimizationConfig = PromptOptimizationConfig()
    prices: dict[str, ModelPriceConfig] = Field(default_factory=dict)
    """Per-model prices merged over the built-in list prices (`domain.pricing`)."""
    tenant_monthly_budget_usd: float | None = Field(None, ge=0.0, le=1e9)
    """A tenant whose model spend this month reached its budget (its own, set by an admin,
    else this one) gets the rules planner until the month ends. None: no default budget."""
    session_max_chars: int = Field(40_000, ge=1_000, le=1_000_000)
    """Characters of text (prompt messages and replies together) kept per stored AI
    session; longer texts are cut, marked (see `cronicorn.ai.sessions`)."""

    def price_table(self) -> dict[str, ModelPrice]:
        """The built-in prices with `prices` applied over them."""
        table = dict(DEFAULT_PRICES)
        for name, p in self.prices.items():
            cached = p.input if p.cached_input is None else p.cached_input
            table[name] = ModelPrice(p.input, cached, p.output)
        return table

    def model_price(self) -> ModelPrice | None:
        return price_for(self.model, self.price_table())


class CircuitBreakerConfig(_Section):
    enabled: bool = True
    failure_threshold: int = Field(5, ge=1, le=10_000)
    """Failures within `window_ms` that open the circuit."""
    window_ms: int = Field(60_000, ge=100)
    cooldown_ms: int = Field(30_000, ge=10)
    half_open_max_calls: int = Field(1, ge=1, le=1_000)


class ExecutionConfig(_Section):
    max_concurrency: int = Field(5, ge=1, le=10_000)
    """Global cap on in-flight HTTP calls across all jobs of one worker."""
    default_timeout_ms: int = Field(30_000, ge=100, le=300_000)
    """Timeout for endpoints that do not set their own."""
    max_endpoint_retries: int = Field(3, ge=0, le=20)
    retry_base_delay_ms: int = Field(200, ge=0)
    retry_max_delay_ms: int = Field(10_000, ge=0)
    retry_after_cap_ms: int = Field(30_000, ge=0)
    retry_non_idempotent: bool = False
    """Retry POST/PATCH after the request was sent (5xx, timeouts). Off by default."""
    response_content_length_limit: int = Field(10_000, ge=0, le=50 * 1024 * 1024)
    """Characters of response text stored per result."""
    max_redirects: int = Field(5, ge=0, le=20)
    allow_private_networks: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts (names or IPs/CIDRs) allowed even when private."""
    user_agent: str = "cronicorn/0.1"
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()


class MetricsConfig(_Section):
    enabled: bool = True
    track_token_usage: bool = True
    """Off: no token counts anywhere (stats, Prometheus, runs, job totals; no daily budgets)."""
    port: int | None = Field(None, ge=0, le=65_535)
    """Serve Prometheus metrics and /health on this port (engine process)."""
    per_job_labels: bool = False
    """Opt in to job/endpoint id labels (unbounded cardinality)."""


class SchedulerConfig(_Section):
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
    heartbeat_interval_ms: int = Field(10_000, ge=100)
    warn_failure_ratio: float = Field(0.25, ge=0.0, le=1.0)
    critical_failure_ratio: float = Field(0.5, ge=0.0, le=1.0)
    default_interval_ms: int = Field(3_600_000, ge=1_000)
    rules_strategy: Literal["sequential", "parallel"] = "sequential"
    worker_id: str | None = None

    @model_validator(mode="after")
    def _ratios_ordered(self) -> SchedulerConfig:
        if self.warn_failure_ratio > self.critical_failure_ratio:
            raise ValueError("warn_failure_ratio must be <= critical_failure_ratio")
        return self


class EventsConfig(_Section):
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


class LoggerConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)
    """Fraction of noisy per-attempt lines kept."""


class EngineConfig(_Section):
    ai_agent: AIAgentConfig = AIAgentConfig()
    execution: ExecutionConfig = ExecutionConfig()
    metrics: MetricsConfig = MetricsConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    events: EventsConfig = EventsConfig()
    logger: LoggerConfig = LoggerConfig()
