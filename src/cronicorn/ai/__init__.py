"""The AI agent (SPEC §6): prompts, output schemas, repair loop, the OpenAI adapter and the
deterministic rules planner. `create_planner` picks one from the configuration.

Names are imported lazily (PEP 562): the settings (`cronicorn.ai.config`) are read by
`EngineConfig` without loading the OpenAI SDK.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

if TYPE_CHECKING:
    from cronicorn.ai.config import AIAgentConfig, RulesStrategy
    from cronicorn.ai.openai_planner import OpenAIPlanner
    from cronicorn.ai.planner import Planner
    from cronicorn.ai.rules_planner import RulesPlanner
    from cronicorn.ai.stats import InvalidKind, PlannerStats
    from cronicorn.ai.transport import Backoff
    from cronicorn.runtime.clock import Clock

_EXPORTS: dict[str, str] = {
    "Backoff": "cronicorn.ai.transport",
    "InvalidKind": "cronicorn.ai.stats",
    "OpenAIPlanner": "cronicorn.ai.openai_planner",
    "Planner": "cronicorn.ai.planner",
    "PlannerStats": "cronicorn.ai.stats",
    "RulesPlanner": "cronicorn.ai.rules_planner",
}

__all__ = [
    "Backoff",
    "InvalidKind",
    "OpenAIPlanner",
    "Planner",
    "PlannerStats",
    "RulesPlanner",
    "create_planner",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

log = logging.getLogger("cronicorn.ai")
_warned_no_key = False


def create_planner(
    ai: AIAgentConfig,
    *,
    rules_strategy: RulesStrategy = "sequential",
    clock: Clock | None = None,
) -> OpenAIPlanner | RulesPlanner:
    """The OpenAI planner (falling back to rules) when `ai.api_key` is set, else the rules
    planner — with a warning, logged once per process, since the product then runs without
    AI. `rules_strategy` is `scheduler.rules_strategy`."""
    from cronicorn.ai.rules_planner import RulesPlanner

    global _warned_no_key
    rules = RulesPlanner(rules_strategy)
    if ai.api_key is not None and ai.api_key.get_secret_value():
        from cronicorn.ai.openai_planner import OpenAIPlanner

        return OpenAIPlanner(ai, clock=clock, fallback=rules)
    if not _warned_no_key:
        _warned_no_key = True
        log.warning("no AI API key configured (OPENAI_API_KEY): using the rules planner")
    return rules
