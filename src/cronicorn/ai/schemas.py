"""The AI's structured-output schemas (SPEC §6 field names) and their conversion to domain types.

OpenAI's strict structured output accepts only closed objects whose properties are all
required, so free-form maps are modelled as lists of pairs: `parameters` as
`{name, value_json}` (the value as JSON text) and `headers` as `{name, value}`. The converters
turn them back into the SPEC's shapes. Range checks (confidence in [0, 1], times in the future)
are left to `domain.plan_validation` so non-strict mode can salvage them instead of failing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cronicorn.domain.models import (
    ActionPriority,
    ActionType,
    ExecutionStrategy,
    JsonValue,
    Plan,
    PlannedCall,
    RecommendedAction,
    ScheduleProposal,
)

PLAN_SCHEMA_NAME = "cronicorn_plan"
SCHEDULE_SCHEMA_NAME = "cronicorn_schedule"
_M = TypeVar("_M", bound=BaseModel)


class OutputInvalid(Exception):
    """The model's reply is not valid JSON for the schema, or cannot be converted."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParameterPair(_Closed):
    name: str
    value_json: str = Field(description='The value as JSON text, e.g. 42, "abc", {"a": 1}')


class HeaderPair(_Closed):
    name: str
    value: str


class AIPlannedCall(_Closed):
    endpoint_id: str = Field(description="One of the listed endpoint ids, verbatim")
    parameters: list[ParameterPair]
    headers: list[HeaderPair]
    priority: int = Field(description="Lower values run first in sequential plans")
    depends_on: list[str] = Field(description="endpoint_ids of this plan that must finish first")
    critical: bool = Field(description="A failure stops or skips the calls that follow")


class AIPlan(_Closed):
    endpoints_to_call: list[AIPlannedCall]
    execution_strategy: Literal["sequential", "parallel", "mixed"]
    concurrency_limit: int | None
    preliminary_next_run_at: str | None = Field(description="ISO 8601 UTC, or null")
    reasoning: str
    confidence: float = Field(description="0 to 1")


class AIAction(_Closed):
    type: Literal[
        "pause_job", "retry_failed_endpoints", "modify_frequency", "notify_user", "adjust_timeout"
    ]
    details: str
    priority: Literal["low", "medium", "high"]


class AISchedule(_Closed):
    next_run_at: str = Field(description="ISO 8601 UTC, e.g. 2030-01-01T12:00:00Z")
    reasoning: str
    confidence: float = Field(description="0 to 1")
    recommended_actions: list[AIAction]
    valid_for_ms: int | None = Field(
        None,
        description="How long this decision holds if nothing changes, in ms (null: the "
        "engine's limit); it is reused until then unless the responses change",
    )


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema in the form strict mode accepts: `$ref`s inlined (some
    OpenAI-compatible servers do not resolve them), every object closed with all properties
    required, and no `title`/`default` noise."""
    raw = model.model_json_schema()
    strict: dict[str, Any] = _strictify(raw, raw.get("$defs", {}))
    return strict


def _strictify(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strictify(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _strictify(merged, defs)
    out = {
        key: _strictify(value, defs)
        for key, value in node.items()
        if key not in ("title", "default", "$defs")
    }
    if out.get("type") == "object":
        props = out.get("properties", {})
        out["properties"] = props
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def response_format(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """The Chat Completions `response_format` for structured output with `model`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "strict": True, "schema": strict_json_schema(model)},
    }


def parse_datetime_utc(text: str, field: str) -> datetime:
    """ISO 8601 with any offset → aware UTC. A time without offset is taken as UTC (the prompt
    asks for UTC; small local models often drop the `Z`)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise OutputInvalid([f"{field}: '{text}' is not an ISO 8601 date-time"]) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_plan(content: str) -> Plan:
    """The model's phase-1 reply → domain Plan. Raises OutputInvalid with exact errors."""
    ai = _load(content, AIPlan)
    errors: list[str] = []
    calls = []
    for i, call in enumerate(ai.endpoints_to_call):
        params = _parameters(call.parameters, f"endpoints_to_call[{i}].parameters", errors)
        headers: dict[str, str] = {}
        for pair in call.headers:
            if pair.name in headers:
                errors.append(f"endpoints_to_call[{i}].headers: '{pair.name}' repeated")
            headers[pair.name] = pair.value
        calls.append(
            PlannedCall(
                endpoint_id=call.endpoint_id,
                parameters=params,
                headers=headers,
                priority=call.priority,
                depends_on=tuple(call.depends_on),
                critical=call.critical,
            )
        )
    preliminary = None
    if ai.preliminary_next_run_at:
        try:
            preliminary = parse_datetime_utc(ai.preliminary_next_run_at, "preliminary_next_run_at")
        except OutputInvalid as exc:
            errors.extend(exc.errors)
    if errors:
        raise OutputInvalid(errors)
    return Plan(
        calls=tuple(calls),
        strategy=ExecutionStrategy(ai.execution_strategy),
        concurrency_limit=ai.concurrency_limit,
        preliminary_next_run_at=preliminary,
        reasoning=ai.reasoning,
        confidence=ai.confidence,
    )


def parse_schedule(content: str) -> ScheduleProposal:
    """The model's phase-2 reply → domain ScheduleProposal (next run in UTC)."""
    ai = _load(content, AISchedule)
    return ScheduleProposal(
        next_run_at=parse_datetime_utc(ai.next_run_at, "next_run_at"),
        reasoning=ai.reasoning,
        confidence=ai.confidence,
        recommended_actions=tuple(
            RecommendedAction(
                type=ActionType(a.type), details=a.details, priority=ActionPriority(a.priority)
            )
            for a in ai.recommended_actions
        ),
        valid_for_ms=ai.valid_for_ms if ai.valid_for_ms is None or ai.valid_for_ms > 0 else None,
    )


def _load(content: str, model: type[_M]) -> _M:
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        raise OutputInvalid([f"reply is not valid JSON: {exc}"]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise OutputInvalid(
            [
                f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors()
            ]
        ) from None


def _parameters(pairs: list[ParameterPair], where: str, errors: list[str]) -> dict[str, JsonValue]:
    params: dict[str, JsonValue] = {}
    for pair in pairs:
        if pair.name in params:
            errors.append(f"{where}: '{pair.name}' repeated")
        try:
            params[pair.name] = json.loads(pair.value_json)
        except json.JSONDecodeError:
            errors.append(
                f"{where}: value_json of '{pair.name}' is not valid JSON text: {pair.value_json!r}"
            )
    return params
