"""Settings of the AI agent (`EngineConfig.ai_agent`, SPEC §8): model, transport, repair,
reuse, prompt budget and prices. `EngineConfig` composes them; env variables are read in
`cronicorn.engine.env`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from cronicorn.domain.pricing import DEFAULT_PRICES, ModelPrice, price_for
from cronicorn.runtime.config import ConfigSection

RulesStrategy = Literal["sequential", "parallel"]
"""How the rules planner runs a job's endpoints (`scheduler.rules_strategy`)."""


class PromptOptimizationConfig(ConfigSection):
    enabled: bool = True
    max_prompt_tokens: int = Field(12_000, ge=500, le=1_000_000)
    """Budget per prompt; the oldest history is dropped first, system messages kept."""
    max_history_messages: int = Field(100, ge=0, le=10_000)
    max_result_chars: int = Field(2_000, ge=0, le=1_000_000)
    """Fresh response bodies are compacted (structure-aware) to about this many characters
    inside prompts; errors are cut to it."""


class ModelPriceConfig(ConfigSection):
    """US dollars per million tokens (see `cronicorn.domain.pricing`)."""

    input: float = Field(ge=0.0, le=10_000.0)
    cached_input: float | None = Field(None, ge=0.0, le=10_000.0)
    """None: the input price (no cache discount)."""
    output: float = Field(ge=0.0, le=10_000.0)


class AIAgentConfig(ConfigSection):
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
