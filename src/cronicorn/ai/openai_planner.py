"""The AI planner: both phases through the official `openai` SDK, rules planner as fallback.

Works with any OpenAI-compatible server (`base_url`). Never raises for AI trouble: when the
model cannot be reached after `max_retries` transport retries, refuses, or stays invalid after
`max_repair_attempts` re-asks — or the job's daily token budget is spent — the decision comes
from the fallback (rules) planner with `fallback_reason` set, and still reports the tokens and
calls the failed attempts cost.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import openai

from cronicorn.ai import prompts
from cronicorn.ai.budget import ChatMessage
from cronicorn.ai.config import AIAgentConfig
from cronicorn.ai.planner import Planner
from cronicorn.ai.repair import PhaseOutcome, PhaseSpec, run_phase
from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.ai.schemas import (
    PLAN_SCHEMA_NAME,
    SCHEDULE_SCHEMA_NAME,
    AIPlan,
    AISchedule,
    parse_plan,
    parse_schedule,
    response_format,
)
from cronicorn.ai.sessions import build_session
from cronicorn.ai.stats import AIObserver, PlannerStats
from cronicorn.ai.transport import Backoff, ChatTransport, warm_up_sdk
from cronicorn.domain.models import (
    AISession,
    EndpointResult,
    JobContext,
    Plan,
    PlanDecision,
    PlanSource,
    ScheduleDecision,
    ScheduleProposal,
    TokenUsage,
)
from cronicorn.domain.plan_validation import (
    salvage_plan,
    salvage_schedule,
    validate_plan,
    validate_schedule,
)
from cronicorn.errors import ConfigError
from cronicorn.observability.redaction import register_secret
from cronicorn.runtime.clock import Clock, SystemClock

log = logging.getLogger("cronicorn.ai")

T = TypeVar("T")
S = TypeVar("S", Plan, ScheduleProposal)

_PLAN_FORMAT = response_format(PLAN_SCHEMA_NAME, AIPlan)
_SCHEDULE_FORMAT = response_format(SCHEDULE_SCHEMA_NAME, AISchedule)


class OpenAIPlanner:
    """`Planner` backed by Chat Completions structured output, with repair and fallback.

    `client` lets callers share or customise the SDK client; it should have `max_retries=0`
    (retries are done and counted here). `backoff` tunes the transport retry delays.
    """

    def __init__(
        self,
        config: AIAgentConfig,
        *,
        clock: Clock | None = None,
        client: openai.AsyncOpenAI | None = None,
        fallback: Planner | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.stats = PlannerStats()
        self._clock: Clock = clock or SystemClock()
        self._owns_client = client is None
        self._client = client or _make_client(config)
        self._fallback: Planner = fallback or RulesPlanner()
        self._transport = ChatTransport(
            self._client, config, self.stats, self._clock, backoff or Backoff(), rng
        )
        self._price = config.model_price()
        warm_up_sdk()  # the first job's AI call should not pay for the SDK's lazy set-up

    async def plan(self, context: JobContext) -> PlanDecision:
        budget = self._budget_exhausted(context, spent=0)
        if budget:
            return await self._plan_fallback(context, PhaseOutcome(None, TokenUsage(), 0), budget)
        now = self._clock.now()
        messages = prompts.build_plan_messages(context, now, self.config.prompt_optimization)
        spec: PhaseSpec[Plan] = PhaseSpec(
            _PLAN_FORMAT,
            parse_plan,
            lambda p: validate_plan(p, context.endpoints, now),
            lambda p: _with_notes(salvage_plan(p, context.endpoints, now)),
            phase="plan",
        )
        outcome, session = await self._run(messages, spec, context)
        if outcome.value is None:
            decision = await self._plan_fallback(context, outcome, outcome.failure or "no plan")
            return replace(decision, sessions=(session,))
        return PlanDecision(
            plan=outcome.value,
            source=PlanSource.AI_REPAIRED if outcome.repaired else PlanSource.AI,
            usage=outcome.usage,
            ai_calls=outcome.ai_calls,
            repaired=outcome.repaired,
            sessions=(session,),
        )

    async def schedule(
        self, context: JobContext, plan: PlanDecision, results: Sequence[EndpointResult]
    ) -> ScheduleDecision:
        reason = self._budget_exhausted(context, spent=plan.usage.total)
        if reason is None and (plan.fallback_reason or "").startswith("transport"):
            reason = f"AI unreachable during planning ({plan.fallback_reason})"
        if reason:
            return await self._schedule_fallback(context, plan, results, _empty(), reason)
        now = self._clock.now()
        messages = prompts.build_schedule_messages(
            context, plan, results, now, self.config.prompt_optimization
        )
        spec: PhaseSpec[ScheduleProposal] = PhaseSpec(
            _SCHEDULE_FORMAT,
            parse_schedule,
            lambda s: validate_schedule(s, now),
            lambda s: _with_notes(salvage_schedule(s, now)),
            phase="schedule",
        )
        outcome, session = await self._run(messages, spec, context)
        if outcome.value is None:
            failure = outcome.failure or "no schedule"
            decision = await self._schedule_fallback(context, plan, results, outcome, failure)
            return replace(decision, sessions=(session,))
        return ScheduleDecision(
            proposal=outcome.value,
            source=PlanSource.AI_REPAIRED if outcome.repaired else PlanSource.AI,
            usage=outcome.usage,
            ai_calls=outcome.ai_calls,
            repaired=outcome.repaired,
            sessions=(session,),
        )

    def set_observer(self, observer: AIObserver | None) -> None:
        """Report every AI request and repair to `observer` (the engine's metrics)."""
        self._transport.observer = observer

    async def close(self) -> None:
        """Close the SDK client if this planner created it."""
        if self._owns_client:
            await self._client.close()

    async def _run(
        self, messages: list[ChatMessage], spec: PhaseSpec[T], context: JobContext
    ) -> tuple[PhaseOutcome[T], AISession]:
        started_at = self._clock.now()
        started = time.perf_counter()
        outcome = await run_phase(
            self._transport,
            messages,
            spec,
            strict=self.config.strict,
            max_repairs=self.config.max_repair_attempts,
            stats=self.stats,
        )
        session = build_session(
            phase=spec.phase,
            model=self.config.model,
            started_at=started_at,
            latency_s=time.perf_counter() - started,
            messages=messages,
            outcome=outcome,
            context=context,
            price=self._price,
            max_chars=self.config.session_max_chars,
        )
        return outcome, session

    def _budget_exhausted(self, context: JobContext, spent: int) -> str | None:
        """The job's daily token budget, then its tenant's monthly money budget."""
        reason = _budget_exhausted(context, spent)
        if reason is not None:
            return reason
        job = context.job
        limit = job.tenant_monthly_budget_usd
        if limit is None:
            limit = self.config.tenant_monthly_budget_usd
        if limit is None or job.tenant_cost_month_usd < limit:
            return None
        return (
            f"budget: tenant monthly budget spent (${job.tenant_cost_month_usd:.4f} "
            f"of ${limit:.2f} this month)"
        )

    async def _plan_fallback(
        self, context: JobContext, outcome: PhaseOutcome[Plan], reason: str
    ) -> PlanDecision:
        self._count_fallback(context, "plan", reason)
        decision = await self._fallback.plan(context)
        return replace(
            decision,
            usage=decision.usage + outcome.usage,
            ai_calls=decision.ai_calls + outcome.ai_calls,
            fallback_reason=reason,
        )

    async def _schedule_fallback(
        self,
        context: JobContext,
        plan: PlanDecision,
        results: Sequence[EndpointResult],
        outcome: PhaseOutcome[ScheduleProposal],
        reason: str,
    ) -> ScheduleDecision:
        self._count_fallback(context, "schedule", reason)
        decision = await self._fallback.schedule(context, plan, results)
        return replace(
            decision,
            usage=decision.usage + outcome.usage,
            ai_calls=decision.ai_calls + outcome.ai_calls,
            fallback_reason=reason,
        )

    def _count_fallback(self, context: JobContext, phase: str, reason: str) -> None:
        self.stats.fallbacks += 1
        if reason.startswith("budget"):
            self.stats.budget_fallbacks += 1
        log.warning("job %s: %s falls back to the rules planner: %s", context.job.id, phase, reason)


def _make_client(config: AIAgentConfig) -> openai.AsyncOpenAI:
    if config.api_key is None:
        raise ConfigError("ai_agent.api_key is required for OpenAIPlanner (or pass client=)")
    register_secret(config.api_key.get_secret_value())
    timeout_s = config.timeout_ms / 1000
    # aiohttp (a dependency anyway) under the SDK instead of its default httpx stack: with
    # dozens of calls in flight httpx's connection pool rescans every connection on each
    # request and response, and the anyio layer adds more; together about 40 % of the
    # SDK's CPU per call. The SDK's own aiohttp client keeps its errors and retries intact.
    return openai.AsyncOpenAI(
        api_key=config.api_key.get_secret_value(),
        base_url=config.base_url,
        timeout=timeout_s,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(timeout=timeout_s),
    )


def _budget_exhausted(context: JobContext, spent: int) -> str | None:
    job = context.job
    if job.daily_token_budget is None:
        return None
    used = job.tokens_used_today + spent
    if used < job.daily_token_budget:
        return None
    return f"budget: daily token budget exhausted ({used} of {job.daily_token_budget} used)"


def _with_notes(salvaged: tuple[S, list[str]]) -> tuple[S, list[str]]:
    value, notes = salvaged
    if not notes:
        return value, notes
    text = f"{value.reasoning} [salvaged: {'; '.join(notes)}]".strip()
    return replace(value, reasoning=text), notes


def _empty() -> PhaseOutcome[ScheduleProposal]:
    return PhaseOutcome(None, TokenUsage(), 0)
