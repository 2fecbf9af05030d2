"""Cronicorn: an AI-driven HTTP job scheduler.

    from cronicorn import create_scheduling_engine, EngineConfig
    engine = create_scheduling_engine({"scheduler": {"max_batch_size": 20}})
    await engine.start(); ...; await engine.stop()

The public names below are imported lazily (PEP 562), so `import cronicorn` costs nothing
until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cronicorn._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # engine
    "create_scheduling_engine": "cronicorn.engine.factory",
    "SchedulingEngine": "cronicorn.engine.engine",
    "EngineConfig": "cronicorn.engine.config",
    "CycleResult": "cronicorn.engine.stats",
    "EngineState": "cronicorn.engine.stats",
    "EngineStats": "cronicorn.engine.stats",
    "EngineEvent": "cronicorn.engine.events",
    "SystemClock": "cronicorn.runtime.clock",
    # ports
    "Clock": "cronicorn.runtime.clock",
    "Executor": "cronicorn.engine.ports",
    "Planner": "cronicorn.ai.planner",
    "SchedulerBackend": "cronicorn.engine.ports",
    # domain
    "ClaimedJob": "cronicorn.domain.models",
    "EndpointResult": "cronicorn.domain.models",
    "EndpointSpec": "cronicorn.domain.models",
    "EndpointStatus": "cronicorn.domain.models",
    "Escalation": "cronicorn.domain.models",
    "ExecutionStrategy": "cronicorn.domain.models",
    "JobContext": "cronicorn.domain.models",
    "JobSnapshot": "cronicorn.domain.models",
    "Lease": "cronicorn.domain.models",
    "NextRun": "cronicorn.domain.models",
    "Plan": "cronicorn.domain.models",
    "PlanDecision": "cronicorn.domain.models",
    "PlannedCall": "cronicorn.domain.models",
    "PlanSource": "cronicorn.domain.models",
    "RecommendedAction": "cronicorn.domain.models",
    "RunCompletion": "cronicorn.domain.models",
    "RunStatus": "cronicorn.domain.models",
    "ScheduleDecision": "cronicorn.domain.models",
    "ScheduleProposal": "cronicorn.domain.models",
    "ScheduleSource": "cronicorn.domain.models",
    "TokenUsage": "cronicorn.domain.models",
    # errors
    "CronicornError": "cronicorn.errors",
    "ConfigError": "cronicorn.errors",
    "LeaseLostError": "cronicorn.errors",
}

__all__ = [
    "ClaimedJob",
    "Clock",
    "ConfigError",
    "CronicornError",
    "CycleResult",
    "EndpointResult",
    "EndpointSpec",
    "EndpointStatus",
    "EngineConfig",
    "EngineEvent",
    "EngineState",
    "EngineStats",
    "Escalation",
    "ExecutionStrategy",
    "Executor",
    "JobContext",
    "JobSnapshot",
    "Lease",
    "LeaseLostError",
    "NextRun",
    "Plan",
    "PlanDecision",
    "PlanSource",
    "PlannedCall",
    "Planner",
    "RecommendedAction",
    "RunCompletion",
    "RunStatus",
    "ScheduleDecision",
    "ScheduleProposal",
    "ScheduleSource",
    "SchedulerBackend",
    "SchedulingEngine",
    "SystemClock",
    "TokenUsage",
    "create_scheduling_engine",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from cronicorn.ai.planner import Planner
    from cronicorn.domain.models import (
        ClaimedJob,
        EndpointResult,
        EndpointSpec,
        EndpointStatus,
        Escalation,
        ExecutionStrategy,
        JobContext,
        JobSnapshot,
        Lease,
        NextRun,
        Plan,
        PlanDecision,
        PlannedCall,
        PlanSource,
        RecommendedAction,
        RunCompletion,
        RunStatus,
        ScheduleDecision,
        ScheduleProposal,
        ScheduleSource,
        TokenUsage,
    )
    from cronicorn.engine.config import EngineConfig
    from cronicorn.engine.engine import SchedulingEngine
    from cronicorn.engine.events import EngineEvent
    from cronicorn.engine.factory import create_scheduling_engine
    from cronicorn.engine.ports import Executor, SchedulerBackend
    from cronicorn.engine.stats import CycleResult, EngineState, EngineStats
    from cronicorn.errors import ConfigError, CronicornError, LeaseLostError
    from cronicorn.runtime.clock import Clock, SystemClock
