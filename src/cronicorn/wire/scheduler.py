"""Request/response bodies of the scheduler (engine) routes, shared by the API and
`ApiSchedulerBackend` so both ends serialise the domain types the same way.

The domain dataclasses (`Lease`, `ClaimedJob`, `RunCompletion`, …) are used as they are:
Pydantic validates and serialises them, and their field names are the wire names. Every
request is additionally checked for values the databases cannot store (NUL characters,
integers beyond 64 bits, NaN, naive datetimes), so a bad engine gets a 422, never a 500.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cronicorn.domain.models import (
    ClaimedJob,
    Heartbeat,
    JobErrorRecord,
    Lease,
    NextRun,
    PlanDecision,
    RunCompletion,
    TokenUsage,
)
from cronicorn.domain.storable import db_safe_text

INT32 = 2**31 - 1
INT64 = 2**63 - 1
WIDE_INTS = frozenset({"token", "input", "output", "reasoning", "cached", "total"})
"""Fields stored in 64-bit columns; every other integer must fit 32 bits."""
JSON_FIELDS = frozenset({"response_body", "parameters", "body", "view", "ai_decision", "decision"})
"""Fields stored in JSON columns: integers of any size are fine inside them (a response
with an epoch-milliseconds timestamp must not make its run's completion a 422)."""
MAX_TEXT = {"code": 64, "content_type": 200, "endpoint_id": 36, "job_id": 36, "run_id": 36}
"""Short string columns (PostgreSQL refuses longer values)."""
WorkerId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
LeaseMs = Annotated[int, Field(ge=1_000, le=24 * 3600 * 1000)]
MAX_AHEAD_MS = 10_000
"""Longest a claim may lease a job before its due time (`ClaimRequest.ahead_ms`)."""


def check_storable(
    value: Any, path: str = "body", name: str = "", *, in_json: bool = False
) -> None:
    """Raise ValueError naming the first value no database column could hold.

    Runs on every scheduler request, so the walk builds no path strings on the way down:
    the path of a refused value is assembled only when it is refused."""
    try:
        _walk(value, name, in_json or name in JSON_FIELDS)
    except _Unstorable as exc:
        raise ValueError(f"{path}{''.join(reversed(exc.segments))} {exc.reason}") from None


class _Unstorable(Exception):
    """A refused value; `segments` (innermost first) locate it below the checked value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []


_FIELDS: dict[type[Any], tuple[tuple[str, bool], ...]] = {}


def _fields(cls: type[Any]) -> tuple[tuple[str, bool], ...]:
    """(name, stored in a JSON column) per field of a dataclass or model, cached."""
    cached = _FIELDS.get(cls)
    if cached is None:
        names = list(cls.model_fields) if issubclass(cls, BaseModel) else _dataclass_names(cls)
        cached = _FIELDS[cls] = tuple((name, name in JSON_FIELDS) for name in names)
    return cached


def _dataclass_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _walk(value: Any, name: str, in_json: bool) -> None:
    kind = type(value)
    if kind is str:
        _check_text(value, name)
    elif value is None or kind is bool:
        return
    elif kind is int:
        if not in_json and abs(value) > (INT64 if name in WIDE_INTS else INT32):
            raise _Unstorable("is out of range")
    elif kind is float:
        if not math.isfinite(value):
            raise _Unstorable("must be a finite number")
    elif kind is list or kind is tuple:
        _walk_items(value, name, in_json)
    elif kind is dict:
        _walk_mapping(value, in_json)
    else:
        _walk_other(value, name, in_json)


def _walk_other(value: Any, name: str, in_json: bool) -> None:
    """Subclasses of the basic types (str enums, …), datetimes, dataclasses and models."""
    if isinstance(value, str):
        _check_text(value, name)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float):
        _walk(int(value) if isinstance(value, int) else float(value), name, in_json)
    elif isinstance(value, datetime):
        _check_time(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _walk_fields(value, in_json)
    elif isinstance(value, BaseModel):
        _walk_fields(value, False)
        _walk_mapping(value.model_extra or {}, False)
    elif isinstance(value, Mapping):
        _walk_mapping(value, in_json)
    elif isinstance(value, list | tuple):
        _walk_items(value, name, in_json)


def _walk_fields(value: Any, in_json: bool) -> None:
    """A dataclass's fields (inside a JSON column or not) or a model's (never inside)."""
    for field, json_field in _fields(type(value)):
        try:
            _walk(getattr(value, field), field, in_json or json_field)
        except _Unstorable as exc:
            exc.segments.append("." + field)
            raise


def _walk_items(value: list[Any] | tuple[Any, ...], name: str, in_json: bool) -> None:
    for i, item in enumerate(value):
        try:
            _walk(item, name, in_json)
        except _Unstorable as exc:
            exc.segments.append(f"[{i}]")
            raise


def _walk_mapping(value: Mapping[Any, Any], in_json: bool) -> None:
    for key, item in value.items():
        try:
            _walk(key, "", in_json)
        except _Unstorable as exc:
            exc.segments.append(" key")
            raise
        try:
            _walk(item, "", in_json)
        except _Unstorable as exc:
            exc.segments.append(f".{key}")
            raise


def _check_text(value: str, name: str) -> None:
    try:
        db_safe_text(value)
    except ValueError as exc:
        raise _Unstorable(str(exc)) from None
    limit = MAX_TEXT.get(name)
    if limit is not None and len(value) > limit:
        raise _Unstorable(f"must be at most {limit} characters")


def _check_time(value: datetime) -> None:
    if value.tzinfo is None:
        raise _Unstorable("must include a time zone offset")
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise _Unstorable("is out of range") from None


class WireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable(self) -> WireRequest:
        for name in type(self).model_fields:
            check_storable(getattr(self, name), name, name)
        return self


class ClaimRequest(WireRequest):
    worker_id: WorkerId
    limit: int = Field(ge=1, le=1000, description="Most jobs to lease in this call.")
    lease_ms: LeaseMs
    wait_ms: int = Field(
        0, ge=0, le=300_000, description="Long-poll: wait up to this long for a due job."
    )
    ahead_ms: int = Field(
        0,
        ge=0,
        le=MAX_AHEAD_MS,
        description=(
            "Claim ahead: a job due within this long counts as due (the engine starts it at"
            " its due_at). Pause and lease are still judged now. Must be below lease_ms."
        ),
    )

    history: bool = Field(
        True,
        description=(
            "false: the contexts carry no past messages or results (for a planner that"
            " reads neither, like the rules planner)."
        ),
    )

    @model_validator(mode="after")
    def _ahead_within_lease(self) -> ClaimRequest:
        if self.ahead_ms >= self.lease_ms:
            raise ValueError("ahead_ms must be less than lease_ms")
        return self


class ClaimResponse(BaseModel):
    jobs: list[ClaimedJob] = Field(
        description="Leased jobs with their context (endpoint secrets decrypted)."
    )


class ExtendRequest(WireRequest):
    lease: Lease
    lease_ms: LeaseMs


class PlanRequest(WireRequest):
    lease: Lease
    decision: PlanDecision


class CompleteRequest(WireRequest):
    lease: Lease
    completion: RunCompletion


class CompleteBatchRequest(BaseModel):
    """Several completions in one request (each item validated like `/complete`'s body)."""

    model_config = ConfigDict(extra="forbid")
    items: list[CompleteRequest] = Field(min_length=1, max_length=500)


class CompleteOutcome(BaseModel):
    job_id: str
    status: Literal["completed", "lease_lost", "failed"] = Field(
        description="`completed`: written; `lease_lost`: fenced out, nothing written for "
        "it; `failed`: it could not be stored (e.g. a constraint), nothing written for it."
    )
    detail: str | None = None


class CompleteBatchResponse(BaseModel):
    results: list[CompleteOutcome] = Field(description="One per item, in order.")


class FailRequest(WireRequest):
    lease: Lease
    error: JobErrorRecord
    next_run: NextRun
    consecutive_failures: int = Field(ge=0, le=1_000_000)
    usage: TokenUsage | None = None
    ai_calls: int = Field(0, ge=0, le=1_000_000)


class ReleaseRequest(WireRequest):
    lease: Lease
    reason: str = Field("released", max_length=500)


class ForceUnlockRequest(WireRequest):
    job_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(
        None, max_length=10_000, description="Only these jobs (default: every job)."
    )
    stale_only: bool = Field(True, description="Only leases that have expired.")


class ForceUnlockResponse(BaseModel):
    released: list[str]


class HeartbeatRequest(WireRequest):
    worker_id: WorkerId
    info: Heartbeat = Field(default_factory=Heartbeat)


class NextDueResponse(BaseModel):
    next_due_at: datetime | None


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    last_cycle_at: datetime | None
    stopped_at: datetime | None
    stats: dict[str, Any]


class SchedulerStats(BaseModel):
    """Counts over every tenant, for `cronicorn-engine status` and dashboards."""

    jobs_active: int
    jobs_paused: int
    jobs_due: int
    jobs_locked: int
    jobs_failing: int = Field(description="Active jobs whose last run failed.")
    runs_running: int
    workers_live: int = Field(description="Workers with a heartbeat in the last minute.")
    next_due_at: datetime | None
