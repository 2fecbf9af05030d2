"""What model calls cost in money: a price table per model and the arithmetic (pure).

Prices are US dollars per million tokens: input, cached input (prompt tokens the provider
served from its cache, billed at a discount) and output (reasoning tokens are output tokens).
OpenAI-style usage counts cached tokens inside `prompt_tokens`, so a call costs

    (input - cached) * input_price + cached * cached_input_price + output * output_price

divided by one million. A model is looked up by exact name, then by the longest table key
that its name starts with (`gpt-4o-2024-08-06` → `gpt-4o`, `gpt-4o-mini-…` → `gpt-4o-mini`).
A model that is in no table costs nothing (0.0) — add it with `ai_agent.prices`
(`CRONICORN_AI_PRICES`), e.g. for a self-hosted model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cronicorn.domain.models import TokenUsage

__all__ = ["DEFAULT_PRICES", "PRICES_AS_OF", "ModelPrice", "cost_usd", "price_for"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float


PRICES_AS_OF = "2025-08"
"""When the defaults below were taken: OpenAI's public list prices (standard tier) as the
maintainers knew them then. They change; check https://openai.com/api/pricing and override
them with `ai_agent.prices` / `CRONICORN_AI_PRICES`."""

DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(2.50, 1.25, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.075, 0.60),
    "gpt-4.1": ModelPrice(2.00, 0.50, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 0.10, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.025, 0.40),
    "o3": ModelPrice(2.00, 0.50, 8.00),
    "o4-mini": ModelPrice(1.10, 0.275, 4.40),
    "gpt-5": ModelPrice(1.25, 0.125, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 0.025, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.005, 0.40),
}


def price_for(model: str, table: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of `model`: exact name, else the longest key it starts with, else None."""
    exact = table.get(model)
    if exact is not None:
        return exact
    best: str | None = None
    for name in table:
        if model.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    return table[best] if best is not None else None


def cost_usd(usage: TokenUsage, price: ModelPrice | None) -> float:
    """The cost of `usage` at `price` (0.0 for an unknown price), rounded to 1e-9 dollars."""
    if price is None:
        return 0.0
    cached = min(max(0, usage.cached), max(0, usage.input))
    fresh = max(0, usage.input) - cached
    total = fresh * price.input + cached * price.cached_input + max(0, usage.output) * price.output
    return round(total / 1_000_000, 9)
