"""`cronicorn simulate`: the four scenarios through the real pipeline on a virtual clock, with
the rules planner and with the fake model (the official SDK against tests/fakes/fake_openai).

The fake model has a policy, like a real one would: check every minute while the queue is
high, every 2 minutes while the endpoint fails, every 10 minutes otherwise. The numbers the
model-mode tests print (`-s`) are the table in docs/ai.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from cronicorn.ai.prompts import CURRENT_TIME_MARKER
from cronicorn.ai.schemas import SCHEDULE_SCHEMA_NAME
from cronicorn.cli.main import app
from cronicorn.engine.config import EngineConfig
from cronicorn.simulation.runner import SimulationResult, run_simulation
from cronicorn.simulation.scenarios import SCENARIOS
from tests.fakes.fake_openai import FakeOpenAI, Reply, auto_reply

QUEUE = re.compile(r'"queue":\s*(\d+)')


def policy(body: dict[str, Any]) -> Reply:
    """Schedule from the fresh result in the task message; plans call every endpoint."""
    if body["response_format"]["json_schema"]["name"] != SCHEDULE_SCHEMA_NAME:
        return auto_reply(body, 600)
    text = "\n".join(str(m["content"]) for m in body["messages"])
    task = str(body["messages"][-1]["content"])
    fresh = task.split("Fresh results of this run:", 1)[-1]
    now = datetime.fromisoformat(re.findall(re.escape(CURRENT_TIME_MARKER) + r"(\S+)", text)[-1])
    queue = [int(n) for n in QUEUE.findall(fresh)]
    if " failed " in fresh or not queue:
        seconds, why = 120, "the endpoint fails: retry in 2 minutes"
    elif queue[-1] > 100:
        seconds, why = 60, f"queue is high ({queue[-1]}): check every minute"
    else:
        seconds, why = 600, f"queue is normal ({queue[-1]}): every 10 minutes"
    at = (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return Reply.json(
        {"next_run_at": at, "reasoning": why, "confidence": 0.9, "recommended_actions": []}
    )


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(responder=policy) as fake:
        yield fake


def model_config(fake: FakeOpenAI) -> EngineConfig:
    return EngineConfig.model_validate(
        {"ai_agent": {"api_key": "sk-sim", "base_url": fake.base_url, "model": "gpt-4o-mini"}}
    )


def reacted(result: SimulationResult, index: int) -> float | None:
    return result.reactions[index].reacted_after_s


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_rules_planner_scenarios(name: str) -> None:
    result = await run_simulation(SCENARIOS[name], EngineConfig(), mode="on_change")
    assert result.planner == "rules"
    assert result.ai_calls == 0
    assert result.tokens == 0
    assert result.cost_usd == 0.0
    # The baseline: every 15 minutes, 96 runs a day when nothing fails.
    if name in ("steady", "surge", "drift"):
        assert len(result.runs) == 96
        assert {r.source for r in result.runs} == {"baseline_interval"}
        assert all(x.reacted_after_s is None for x in result.reactions)  # rules ignore load
    if name == "outage":
        down, back = result.reactions
        assert down.reacted_after_s is not None
        assert down.reacted_after_s <= 15 * 60  # the first run in the outage backs off
        assert down.after is not None
        assert down.after.startswith("backoff")
        assert back.reacted_after_s is not None
        assert back.after is not None
        assert back.after.startswith("baseline_interval")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_model_scenarios_in_both_modes(name: str, model: FakeOpenAI) -> None:
    config = model_config(model)
    every = await run_simulation(SCENARIOS[name], config, mode="every_run")
    change = await run_simulation(SCENARIOS[name], config, mode="on_change")
    for result in (every, change):
        assert result.planner == "ai"
        assert result.model == "gpt-4o-mini"
        assert result.cost_usd > 0
        assert result.fallbacks == 0
        print(
            f"\n{name} {result.mode}: {len(result.runs)} runs, {result.ai_calls} model calls, "
            f"{result.tokens} tokens, ${result.cost_usd:.4f}; reactions "
            + ", ".join(
                f"{x.description}: {x.reacted_after_s}s → {x.after}" for x in result.reactions
            )
        )
    assert every.ai_calls == 2 * len(every.runs)
    assert change.ai_calls < every.ai_calls / 3
    assert change.tokens < every.tokens / 3
    if name == "surge":
        for result in (every, change):
            up, down = result.reactions
            # Within the first run after the spike (every 10 min at most), and back down.
            assert up.reacted_after_s is not None
            assert up.reacted_after_s <= 600
            assert up.after is not None
            assert "1 min" in up.after
            assert down.reacted_after_s is not None
            assert down.reacted_after_s <= 60
    if name == "outage":
        for result in (every, change):
            assert all(x.reacted_after_s is not None for x in result.reactions)
            assert all(x.reacted_after_s <= 600 for x in result.reactions)  # type: ignore[operator]
    if name == "drift":
        assert all(x.reacted_after_s is not None for x in change.reactions)
    if name == "steady":
        assert change.ai_calls <= 2 * 25  # one decision an hour (decision_ttl_ms) at most


def test_cli_prints_runs_calls_tokens_cost_and_reactions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    level = logging.getLogger("cronicorn").level
    result = CliRunner().invoke(app, ["simulate", "outage", "--mode", "on_change", "--hours", "12"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger("cronicorn").level == level, "quiet for the command only"
    for text in ("runs", "model calls", "tokens", "cost", "endpoint down", "backoff"):
        assert text in result.output, text
    bad = CliRunner().invoke(app, ["simulate", "tsunami"])
    assert bad.exit_code == 2
