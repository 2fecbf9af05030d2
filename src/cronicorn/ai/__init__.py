"""The AI agent (SPEC §6): prompts, output schemas, repair loop, the OpenAI adapter and the
deterministic rules planner. `create_planner` picks one from the configuration."""

from __future__ import annotations

import logging

from cronicorn.ai.openai_planner import OpenAIPlanner
from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.ai.stats import InvalidKind, PlannerStats
from cronicorn.ai.transport import Backoff
from cronicorn.engine.config import AIAgentConfig, SchedulerConfig
from cronicorn.engine.ports import Clock

__all__ = [
    "Backoff",
    "InvalidKind",
    "OpenAIPlanner",
    "PlannerStats",
    "RulesPlanner",
    "create_planner",
]

log = logging.getLogger("cronicorn.ai")
_warned_no_key = False


def create_planner(
    ai: AIAgentConfig, scheduler: SchedulerConfig, *, clock: Clock | None = None
) -> OpenAIPlanner | RulesPlanner:
    """The OpenAI planner (falling back to rules) when `ai.api_key` is set, else the rules
    planner — with a warning, logged once per process, since the product then runs without
    AI."""
    global _warned_no_key
    rules = RulesPlanner(scheduler)
    if ai.api_key is not None and ai.api_key.get_secret_value():
        return OpenAIPlanner(ai, clock=clock, fallback=rules)
    if not _warned_no_key:
        _warned_no_key = True
        log.warning("no AI API key configured (OPENAI_API_KEY): using the rules planner")
    return rules
