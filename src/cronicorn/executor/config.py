"""Settings of the HTTP executor (`EngineConfig.execution`, SPEC §8): concurrency, timeouts,
retries, response limits, the SSRF guard and the circuit breaker. `EngineConfig` composes
them; env variables are read in `cronicorn.engine.env`.
"""

from __future__ import annotations

from pydantic import Field

from cronicorn.runtime.config import ConfigSection


class CircuitBreakerConfig(ConfigSection):
    enabled: bool = True
    failure_threshold: int = Field(5, ge=1, le=10_000)
    """Failures within `window_ms` that open the circuit."""
    window_ms: int = Field(60_000, ge=100)
    cooldown_ms: int = Field(30_000, ge=10)
    half_open_max_calls: int = Field(1, ge=1, le=1_000)


class ExecutionConfig(ConfigSection):
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
