"""The per-job pipeline (SPEC §1): plan → record plan (AI plans only) → execute → schedule →
govern → actions/escalation/summary → one `complete` write.

Failure policy, in one place: whatever phase fails, the error is recorded once (with its
phase), the run is marked failed and the job gets a governor fallback next run with backoff
(no AI) — written by the same single `complete` transaction, which also releases the lease.
Lease renewal stops before that write is sent. While the backend is unreachable the
completion is kept and sent again until it answers (`deliver_completion`): a finished run
is never thrown away for an outage. If the write is refused for another reason, `fail`
makes a minimal last attempt; if even that fails, nothing is half-written and the lease
simply expires (the job re-runs later). A lost lease stops the work and forbids any write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, TypeVar

from cronicorn.ai.planner import Planner
from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.domain.governor import fallback_next_run
from cronicorn.domain.idempotency import DueRun
from cronicorn.domain.models import (
    ClaimedJob,
    EndpointResult,
    EndpointStatus,
    ErrorPhase,
    JobContext,
    JobErrorRecord,
    PlanDecision,
    PlanSource,
    RunCompletion,
    RunStatus,
    ScheduleDecision,
    TokenUsage,
)
from cronicorn.engine.ai_reuse import AIReuse, Gate, asked_context, model_involved
from cronicorn.engine.completion import CompletionBuilder, mask_error, run_masker
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.delivery import DeliveryGate, deliver_completion
from cronicorn.engine.events import EventBus, JobExecutorEvents
from cronicorn.engine.lease import LeaseKeeper
from cronicorn.engine.logs import (
    log_fallback,
    log_job_end,
    log_job_start,
    log_plan,
    register_context_secrets,
)
from cronicorn.engine.ports import Executor, SchedulerBackend
from cronicorn.engine.run_state import Aborted, PhaseFailure, RunState, error_record
from cronicorn.engine.stats import JobOutcome, StatsRecorder
from cronicorn.errors import LeaseLostError
from cronicorn.observability.logging import log_context
from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine.pipeline")
T = TypeVar("T")
RELEASE_TIMEOUT_S = 10.0
CALLED = (EndpointStatus.SUCCESS, EndpointStatus.FAILED)


class JobPipeline:
    """Runs one claimed job to a single persisted outcome. Never raises, except on
    cancellation (after trying to give the lease back)."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        backend: SchedulerBackend,
        planner: Planner,
        executor: Executor,
        clock: Clock,
        events: EventBus,
        stats: StatsRecorder,
        deliveries: DeliveryGate | None = None,
    ) -> None:
        """`deliveries`: where completions waiting for the backend are counted (the engine
        holds its claims while any wait)."""
        self.deliveries = deliveries or DeliveryGate()
        self._config = config
        self._backend = backend
        self._planner = planner
        self._executor = executor
        self._clock = clock
        self._events = events
        self._stats = stats
        self._completions = CompletionBuilder(config, clock, events)
        self._reuse = AIReuse(config.ai_agent)
        self._instant_planner = type(planner) is RulesPlanner
        """The rules planner answers without ever suspending, so there is nothing for an
        abort to interrupt: its calls are awaited directly (no guard tasks, two per phase,
        about 8 % of a worker's CPU per job). The outcome is the same: a guarded call that
        cannot suspend finishes in the same loop step as the abort waiter, and wins."""
        self._track_tokens = config.metrics.track_token_usage

    def _stored_usage(self, usage: TokenUsage) -> TokenUsage:
        """What the store records: nothing when `metrics.track_token_usage` is off (no
        per-run token columns, no job token totals; so no daily_token_budget either)."""
        return usage if self._track_tokens else TokenUsage()

    async def run(
        self, claimed: ClaimedJob, abort: asyncio.Event, cycle_id: str | None = None
    ) -> JobOutcome:
        """Every log line of the run (store, planner, executor included) carries the job
        and run ids: the context is set here and inherited by every task the run starts."""
        with log_context(
            cycle_id=cycle_id, job_id=claimed.lease.job_id, run_id=claimed.lease.run_id
        ):
            return await self._run(claimed, abort, cycle_id)

    async def _run(
        self, claimed: ClaimedJob, abort: asyncio.Event, cycle_id: str | None
    ) -> JobOutcome:
        register_context_secrets(claimed)
        state = RunState(claimed, self._clock.now(), self._clock.monotonic(), cycle_id)
        lag_ms = max(0.0, (state.started_at - claimed.due_at).total_seconds() * 1000)
        log_job_start(claimed, lag_ms)
        if self._events.wants("on_job_start"):
            self._emit("on_job_start", state, due_at=claimed.due_at, lag_ms=lag_ms)
        lease_ms = self._config.scheduler.stale_lock_threshold_ms
        keeper = LeaseKeeper(self._backend, claimed.lease, lease_ms, self._clock, abort.set)
        try:
            with self._stats.job_in_flight():
                async with keeper:
                    outcome = await self._run_leased(state, keeper, abort)
        except asyncio.CancelledError:
            await self._release_quietly(keeper)
            raise
        self._stats.record_job(outcome, state.results, lag_ms / 1000)
        duration_ms = (self._clock.monotonic() - state.started_mono) * 1000
        log_job_end(state, outcome, duration_ms)
        if self._events.wants("on_job_end"):
            self._emit(
                "on_job_end",
                state,
                status=outcome.status.value,
                written=outcome.written,
                error=outcome.error,
                duration_ms=duration_ms,
            )
        return outcome

    async def _run_leased(
        self, state: RunState, keeper: LeaseKeeper, abort: asyncio.Event
    ) -> JobOutcome:
        try:
            completion = await self._phases(state, keeper, abort)
        except Aborted as stop:
            if keeper.lost:
                return self._lost(state)
            self._emit("on_abort", state, reason=stop.reason)
            completion = self._completions.aborted(state, stop.reason)
        except PhaseFailure as failure:
            if keeper.lost:
                return self._lost(state)
            self._report_error(state, failure.record)
            completion = self._completions.failed(state, failure.record)
        return await self._persist(state, keeper, completion)

    # -- phases ---------------------------------------------------------------------------

    async def _phases(
        self, state: RunState, keeper: LeaseKeeper, abort: asyncio.Event
    ) -> RunCompletion:
        claimed_context = state.claimed.context
        state.ai_decision = claimed_context.ai_decision
        gate = self._reuse.gate(claimed_context, self._clock.now())
        context = claimed_context
        if gate.reuse is not None:
            decision = self._reuse.reused_plan(claimed_context, gate.reuse)
            state.avoid("reused")
        else:
            assert gate.trigger is not None
            if not self._instant_planner:  # the rules planner reads no messages
                context = asked_context(claimed_context, gate.trigger, self._clock.now())
            plan_call = self._guard(self._planner.plan(context), abort)
            decision = await self._phase(ErrorPhase.PLAN, plan_call, keeper)
            if model_involved(decision):
                state.ai_trigger = gate.trigger[0]
        state.plan = decision
        state.add_cost(decision)
        self._emit_plan(state, decision)
        if self._record_early(decision):
            await self._phase(ErrorPhase.PERSIST, self._record_plan(keeper, decision), keeper)
        execution = self._execute(state, decision, abort)
        state.results = await self._phase(ErrorPhase.EXECUTE, execution, keeper)
        if abort.is_set():
            raise Aborted("lease lost" if keeper.lost else "shutdown")
        schedule = await self._schedule(state, context, gate, decision, keeper, abort)
        try:
            return self._completions.completed(state, decision, schedule)
        except Exception as exc:
            raise PhaseFailure(ErrorPhase.SCHEDULE, exc) from exc

    async def _schedule(
        self,
        state: RunState,
        context: JobContext,
        gate: Gate,
        decision: PlanDecision,
        keeper: LeaseKeeper,
        abort: asyncio.Event,
    ) -> ScheduleDecision:
        """Phase 2, or the reused cadence when the decision was reused and nothing changed
        (a change sends this run's results to phase 2 at once; the next run re-plans)."""
        previous = state.ai_decision
        change = None
        if gate.reuse is not None:
            change = self._reuse.change_after_run(context, gate.reuse, decision, state.results)
            if change is None:
                state.avoid("reused")
                state.ai_decision = self._reuse.reused(gate.reuse, self._clock.now())
                state.quiet = True
                return self._reuse.reused_schedule(gate.reuse, self._clock.now())
            state.ai_trigger = change[0]
            context = asked_context(context, change, self._clock.now())
        schedule_call = self._planner.schedule(context, decision, state.results)
        schedule = await self._phase(ErrorPhase.SCHEDULE, self._guard(schedule_call, abort), keeper)
        state.add_cost(schedule)
        if schedule.fallback_reason:
            self._fallback(state, "schedule", schedule.fallback_reason)
        state.ai_decision = self._reuse.remember(
            state.claimed.context,
            decision,
            schedule,
            state.results,
            self._clock.now(),
            previous=previous,
            pending=change,
        )
        return schedule

    @staticmethod
    def _record_early(decision: PlanDecision) -> bool:
        """Write the plan before executing only when the AI made (or was asked for) it:
        such runs are slow, and the plan shows while they execute. A rules plan is
        written by `complete` with everything else — a separate write per run cost
        about 40 % of the store time for nothing anyone can see."""
        return decision.source not in (PlanSource.RULES, PlanSource.AI_REUSED) or (
            decision.ai_calls > 0
        )

    async def _record_plan(self, keeper: LeaseKeeper, decision: PlanDecision) -> None:
        # The sessions travel with the completion only (one write, and a small plan request).
        decision = replace(decision, usage=self._stored_usage(decision.usage), sessions=())
        await self._backend.record_plan(keeper.lease, decision)

    async def _execute(
        self, state: RunState, decision: PlanDecision, abort: asyncio.Event
    ) -> list[EndpointResult]:
        context = state.claimed.context
        return await self._executor.execute(
            decision.plan,
            {e.id: e for e in context.endpoints},
            default_headers=context.job.default_headers,
            abort=abort,
            events=JobExecutorEvents(
                self._events, state.job_id, state.run_id, self._stats.record_circuit
            ),
            signing_secret=context.job.signing_secret,
            due_run=DueRun(state.job_id, state.claimed.due_at),
        )

    @staticmethod
    async def _phase(phase: ErrorPhase, work: Awaitable[T], keeper: LeaseKeeper) -> T:
        """Run one phase: a lost lease aborts, any other exception is a PhaseFailure."""
        try:
            return await work
        except Aborted:
            raise
        except LeaseLostError as exc:
            keeper.mark_lost()
            raise Aborted("lease lost") from exc
        except Exception as exc:
            raise PhaseFailure(phase, exc) from exc

    def _guard(self, work: Awaitable[T], abort: asyncio.Event) -> Awaitable[T]:
        """A planner call: guarded by `abort` unless the planner never suspends."""
        return work if self._instant_planner else self._guarded(work, abort)

    @staticmethod
    async def _guarded(work: Awaitable[T], abort: asyncio.Event) -> T:
        """Await `work` unless `abort` fires first (shutdown, lost lease): then cancel it.
        The executor honours `abort` itself; planner calls need this."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(abort.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if task.cancelled():
            raise Aborted("shutdown")
        return task.result()

    # -- persistence ----------------------------------------------------------------------

    async def _persist(
        self, state: RunState, keeper: LeaseKeeper, completion: RunCompletion
    ) -> JobOutcome:
        if keeper.lost:
            return self._lost(state)
        await keeper.stop()
        if keeper.lost:  # a renewal in flight was refused
            return self._lost(state)
        try:
            stored = completion
            if not self._track_tokens:
                stored = replace(completion, usage=TokenUsage())
            await deliver_completion(
                self._backend, keeper.lease, stored, self._clock, gate=self.deliveries
            )
        except LeaseLostError:
            keeper.mark_lost()
            return self._lost(state)
        except Exception as exc:
            return await self._fail_write(state, keeper, completion, exc)
        state.next_run = completion.next_run
        error = completion.error if completion.status is not RunStatus.COMPLETED else None
        return self._outcome(state, completion.status, written=True, error=error)

    async def _fail_write(
        self, state: RunState, keeper: LeaseKeeper, completion: RunCompletion, exc: Exception
    ) -> JobOutcome:
        """`complete` failed (not fenced out): one minimal `fail` write, else let the lease
        expire. The root cause is the error recorded (once)."""
        persist_error = mask_error(run_masker(state), error_record(ErrorPhase.PERSIST, exc))
        error = completion.errors[0] if completion.errors else persist_error
        if not completion.errors:
            self._report_error(state, persist_error)
        job = state.claimed.context.job
        failures = job.consecutive_failures + 1
        now = self._clock.now()
        next_run = fallback_next_run(
            job,
            now,
            consecutive_failures=failures,
            default_interval_ms=self._config.scheduler.default_interval_ms,
        )
        try:
            await self._backend.fail(
                keeper.lease,
                error,
                next_run,
                consecutive_failures=failures,
                usage=self._stored_usage(state.usage),
                ai_calls=state.ai_calls,
            )
        except LeaseLostError:
            keeper.mark_lost()
            return self._lost(state)
        except Exception as final:
            logger.error(
                "job %s run %s: could not record the failure (%s); the lease will expire "
                "and the job will be re-run",
                state.job_id,
                state.run_id,
                final,
            )
            return self._outcome(state, RunStatus.FAILED, written=False, error=error.message)
        state.next_run = next_run
        return self._outcome(state, RunStatus.FAILED, written=True, error=error.message)

    async def _release_quietly(self, keeper: LeaseKeeper) -> None:
        """On cancellation: give the job back (run aborted), bounded and never raising."""
        if keeper.lost:
            return
        release = asyncio.ensure_future(self._backend.release(keeper.lease))
        try:
            await asyncio.wait_for(asyncio.shield(release), RELEASE_TIMEOUT_S)
        except BaseException as exc:
            logger.warning(
                "job %s: release after cancellation failed: %r", keeper.lease.job_id, exc
            )

    # -- outcomes and events --------------------------------------------------------------

    def _lost(self, state: RunState) -> JobOutcome:
        self._stats.record_lease_lost()
        self._emit("on_abort", state, reason="lease lost")
        return self._outcome(state, RunStatus.FAILED, written=False, error="lease lost")

    def _outcome(
        self, state: RunState, status: RunStatus, *, written: bool, error: str | None
    ) -> JobOutcome:
        return JobOutcome(
            job_id=state.job_id,
            run_id=state.run_id,
            status=status,
            written=written,
            endpoint_calls=sum(1 for r in state.results if r.status in CALLED),
            ai_calls=state.ai_calls,
            usage=state.usage,
            fallbacks=state.fallbacks,
            error=error,
            ai_trigger=state.ai_trigger.value if state.ai_trigger else None,
            cost_usd=state.cost_usd,
            calls_avoided=dict(state.calls_avoided),
        )

    def _report_error(self, state: RunState, error: JobErrorRecord) -> None:
        error = mask_error(run_masker(state), error)
        logger.warning(
            "job %s run %s failed in %s: %s %s",
            state.job_id,
            state.run_id,
            error.phase.value,
            error.code,
            error.message,
        )
        self._emit(
            "on_error", state, phase=error.phase.value, code=error.code, message=error.message
        )
        state.fallbacks += 1
        self._fallback(state, error.phase.value, f"{error.phase.value} error: {error.code}")

    def _emit_plan(self, state: RunState, decision: PlanDecision) -> None:
        plan = decision.plan
        log_plan(decision)
        if self._events.wants("on_plan"):
            self._emit(
                "on_plan",
                state,
                source=decision.source.value,
                strategy=plan.strategy.value,
                endpoint_ids=[c.endpoint_id for c in plan.calls],
                reasoning=plan.reasoning,
                confidence=plan.confidence,
                fallback_reason=decision.fallback_reason,
            )
        if decision.fallback_reason:
            self._fallback(state, "plan", decision.fallback_reason)

    def _fallback(self, state: RunState, phase: str, reason: str) -> None:
        log_fallback(phase, reason)
        self._stats.record_fallback(reason)
        self._emit("on_fallback", state, phase=phase, reason=reason)

    def _emit(self, name: str, state: RunState, **data: Any) -> None:
        self._events.emit(
            name, job_id=state.job_id, run_id=state.run_id, cycle_id=state.cycle_id, **data
        )
