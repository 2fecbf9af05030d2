"""Prices per model and the cost of token usage (pure)."""

from __future__ import annotations

import pytest

from cronicorn.ai.config import AIAgentConfig
from cronicorn.domain.models import TokenUsage
from cronicorn.domain.pricing import DEFAULT_PRICES, ModelPrice, cost_usd, price_for


def test_cached_input_is_billed_at_its_own_price() -> None:
    price = ModelPrice(input=2.0, cached_input=0.5, output=8.0)
    usage = TokenUsage(input=1_000_000, output=500_000, cached=400_000)
    # 600k fresh input at $2, 400k cached at $0.5, 500k output at $8.
    assert cost_usd(usage, price) == pytest.approx(1.2 + 0.2 + 4.0)


def test_unknown_models_cost_nothing() -> None:
    assert price_for("my-local-llama", DEFAULT_PRICES) is None
    assert cost_usd(TokenUsage(input=10_000, output=10_000), None) == 0.0


def test_dated_model_names_take_the_longest_matching_prefix() -> None:
    assert price_for("gpt-4o-2024-08-06", DEFAULT_PRICES) is DEFAULT_PRICES["gpt-4o"]
    assert price_for("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) is DEFAULT_PRICES["gpt-4o-mini"]


def test_configured_prices_override_the_defaults() -> None:
    config = AIAgentConfig.model_validate(
        {"model": "gpt-4o", "prices": {"gpt-4o": {"input": 1.0, "output": 2.0}}}
    )
    assert config.model_price() == ModelPrice(1.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="greater than or equal"):
        AIAgentConfig.model_validate({"prices": {"m": {"input": -1, "output": 1}}})
