"""Semantic validation of plans and schedule proposals (SPEC §6).

A schema-valid AI answer can still be wrong: an endpoint id the job does not own, a call listed
twice, a dependency cycle, parameters the endpoint's `request_schema` rejects, a next run in the
past. `validate_*` return exact, human-readable errors (naming the field and the id) so they can
be sent back to the model in a repair request; `salvage_*` fix what can be fixed locally (drop,
break, clamp) for non-strict mode, and their output always validates.

Pure: no I/O; `now` is passed in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from referencing.exceptions import Unresolvable

from cronicorn.domain.json_schema import schema_validator
from cronicorn.domain.models import EndpointSpec, JsonValue, Plan, PlannedCall, ScheduleProposal

MAX_CONCURRENCY_LIMIT = 100
"""Upper bound for a plan's `concurrency_limit` (the executor also caps it globally)."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)


def validate_plan(plan: Plan, endpoints: Sequence[EndpointSpec], now: datetime) -> list[str]:
    """Every semantic problem of `plan`, in a stable order; empty when the plan is valid."""
    by_id = {e.id: e for e in endpoints}
    errors: list[str] = []
    seen: set[str] = set()
    for i, call in enumerate(plan.calls):
        where = f"endpoints_to_call[{i}]"
        if call.endpoint_id not in by_id:
            allowed = ", ".join(sorted(by_id)) or "none"
            errors.append(
                f"{where}.endpoint_id: '{call.endpoint_id}' is not an endpoint of this job "
                f"(allowed: {allowed})"
            )
        elif call.endpoint_id in seen:
            errors.append(f"{where}.endpoint_id: '{call.endpoint_id}' is listed more than once")
        else:
            errors.extend(_parameter_errors(where, call, by_id[call.endpoint_id]))
        seen.add(call.endpoint_id)
        errors.extend(_header_errors(where, call.headers))
    errors.extend(_dependency_errors(plan.calls))
    for cycle in find_cycles(plan.calls):
        errors.append("dependency cycle: " + " -> ".join(cycle))
    limit = plan.concurrency_limit
    if limit is not None and not 1 <= limit <= MAX_CONCURRENCY_LIMIT:
        errors.append(
            f"concurrency_limit: {limit} is outside [1, {MAX_CONCURRENCY_LIMIT}] (or use null)"
        )
    errors.extend(_time_errors("preliminary_next_run_at", plan.preliminary_next_run_at, now))
    errors.extend(_confidence_errors(plan.confidence))
    return errors


def salvage_plan(
    plan: Plan, endpoints: Sequence[EndpointSpec], now: datetime
) -> tuple[Plan, list[str]]:
    """A valid plan made from `plan` by dropping or clamping what is wrong, and notes on what
    was changed. Invariant: `validate_plan(result, endpoints, now) == []`."""
    by_id = {e.id: e for e in endpoints}
    notes: list[str] = []
    kept: list[PlannedCall] = []
    for call in plan.calls:
        fixed = _salvage_call(call, by_id, {c.endpoint_id for c in kept}, notes)
        if fixed is not None:
            kept.append(fixed)
    kept = _salvage_dependencies(kept, notes)
    limit = plan.concurrency_limit
    if limit is not None and not 1 <= limit <= MAX_CONCURRENCY_LIMIT:
        clamped = min(max(limit, 1), MAX_CONCURRENCY_LIMIT)
        notes.append(f"concurrency_limit {limit} clamped to {clamped}")
        limit = clamped
    preliminary = plan.preliminary_next_run_at
    if _time_errors("preliminary_next_run_at", preliminary, now):
        notes.append(f"preliminary_next_run_at {_iso(preliminary)} ignored (not in the future)")
        preliminary = None
    confidence = _clamp_confidence(plan.confidence, notes)
    salvaged = replace(
        plan,
        calls=tuple(kept),
        concurrency_limit=limit,
        preliminary_next_run_at=preliminary,
        confidence=confidence,
    )
    return salvaged, notes


def validate_schedule(proposal: ScheduleProposal, now: datetime) -> list[str]:
    """Every semantic problem of a phase-2 proposal; empty when valid."""
    return _time_errors("next_run_at", proposal.next_run_at, now) + _confidence_errors(
        proposal.confidence
    )


def salvage_schedule(
    proposal: ScheduleProposal, now: datetime
) -> tuple[ScheduleProposal, list[str]]:
    """A valid proposal: a past or naive `next_run_at` becomes None ("no opinion", so the
    governor uses the next candidate) and confidence is clamped into [0, 1]."""
    notes: list[str] = []
    next_run_at = proposal.next_run_at
    if _time_errors("next_run_at", next_run_at, now):
        notes.append(f"next_run_at {_iso(next_run_at)} ignored (not in the future)")
        next_run_at = None
    confidence = _clamp_confidence(proposal.confidence, notes)
    return replace(proposal, next_run_at=next_run_at, confidence=confidence), notes


def find_cycles(calls: Sequence[PlannedCall]) -> list[list[str]]:
    """Dependency cycles among the planned calls (self-dependencies excluded: those are
    reported on their own), each as a closed path `[a, b, ..., a]`.

    Every cycle of any length lies in a strongly connected component that a depth-first
    search enters through a back edge; one cycle is reported per back edge found.
    """
    return [cycle for _, cycle in _back_edges(calls)]


def _back_edges(calls: Sequence[PlannedCall]) -> list[tuple[tuple[str, str], list[str]]]:
    graph = _graph(calls)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = finished
    found: list[tuple[tuple[str, str], list[str]]] = []
    for root in graph:
        if root in state:
            continue
        path = [root]
        stack = [iter(graph[root])]
        state[root] = 1
        while stack:
            node = path[-1]
            nxt = next(stack[-1], None)
            if nxt is None:
                state[node] = 2
                path.pop()
                stack.pop()
            elif state.get(nxt) == 1:
                found.append(((node, nxt), [*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return found


def _graph(calls: Sequence[PlannedCall]) -> dict[str, list[str]]:
    """call -> the planned calls it depends on (unknown and self deps left out)."""
    ids = {c.endpoint_id for c in calls}
    graph: dict[str, list[str]] = {}
    for call in calls:
        deps = graph.setdefault(call.endpoint_id, [])
        deps.extend(d for d in dict.fromkeys(call.depends_on) if d in ids and d != call.endpoint_id)
    return graph


def _dependency_errors(calls: Sequence[PlannedCall]) -> list[str]:
    ids = {c.endpoint_id for c in calls}
    errors: list[str] = []
    for i, call in enumerate(calls):
        where = f"endpoints_to_call[{i}] ({call.endpoint_id}).depends_on"
        seen: set[str] = set()
        for dep in call.depends_on:
            if dep == call.endpoint_id:
                errors.append(f"{where}: '{dep}' depends on itself")
            elif dep not in ids:
                errors.append(f"{where}: '{dep}' is not in endpoints_to_call")
            elif dep in seen:
                errors.append(f"{where}: '{dep}' is listed more than once")
            seen.add(dep)
    return errors


def _salvage_call(
    call: PlannedCall,
    by_id: Mapping[str, EndpointSpec],
    kept_ids: set[str],
    notes: list[str],
) -> PlannedCall | None:
    if call.endpoint_id not in by_id:
        notes.append(f"dropped call to unknown endpoint '{call.endpoint_id}'")
        return None
    if call.endpoint_id in kept_ids:
        notes.append(f"dropped duplicate call to '{call.endpoint_id}'")
        return None
    endpoint = by_id[call.endpoint_id]
    if _schema_errors(endpoint.request_schema, call.parameters):
        if _schema_errors(endpoint.request_schema, {}):
            notes.append(f"dropped call to '{call.endpoint_id}': parameters invalid")
            return None
        notes.append(f"cleared invalid parameters of '{call.endpoint_id}'")
        call = replace(call, parameters={})
    headers = {k: v for k, v in call.headers.items() if not _header_errors("", {k: v})}
    if len(headers) != len(call.headers):
        notes.append(f"dropped invalid headers of '{call.endpoint_id}'")
        call = replace(call, headers=headers)
    return call


def _salvage_dependencies(calls: list[PlannedCall], notes: list[str]) -> list[PlannedCall]:
    ids = {c.endpoint_id for c in calls}
    cleaned: list[PlannedCall] = []
    for call in calls:
        deps = tuple(
            d for d in dict.fromkeys(call.depends_on) if d in ids and d != call.endpoint_id
        )
        if deps != tuple(call.depends_on):
            notes.append(f"removed unknown, self or repeated dependencies of '{call.endpoint_id}'")
        cleaned.append(replace(call, depends_on=deps))
    cut: dict[str, set[str]] = {}
    for (src, dst), _ in _back_edges(cleaned):
        cut.setdefault(src, set()).add(dst)
        notes.append(f"removed dependency {src} -> {dst} to break a cycle")
    return [
        replace(c, depends_on=tuple(d for d in c.depends_on if d not in cut[c.endpoint_id]))
        if c.endpoint_id in cut
        else c
        for c in cleaned
    ]


def _parameter_errors(where: str, call: PlannedCall, endpoint: EndpointSpec) -> list[str]:
    return [
        f"{where} ({call.endpoint_id}).parameters: {message}"
        for message in _schema_errors(endpoint.request_schema, call.parameters)
    ]


def _schema_errors(schema: dict[str, Any] | None, params: Mapping[str, JsonValue]) -> list[str]:
    """jsonschema errors of `params`; an endpoint without (or with an unusable) schema takes
    any parameters — the API validates schemas when they are saved. Nothing is ever fetched:
    a reference that is not in the schema itself makes the schema unusable."""
    validator = schema_validator(schema)
    if validator is None:
        return []
    try:
        errors = sorted(validator.iter_errors(dict(params)), key=lambda e: list(e.path))
    except (Unresolvable, RecursionError):
        return []
    out: list[str] = []
    for err in errors:
        at = "/" + "/".join(str(p) for p in err.absolute_path)
        out.append(f"{err.message} (at {at})")
    return out


def _header_errors(where: str, headers: Mapping[str, str]) -> list[str]:
    errors: list[str] = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            errors.append(f"{where}.headers: '{name}' is not a valid header name")
        elif name.lower() in _RESERVED_HEADERS:
            errors.append(f"{where}.headers: '{name}' may not be set by a plan")
        elif any(ch in value for ch in "\r\n\0"):
            errors.append(f"{where}.headers: value of '{name}' contains a line break")
    return errors


def _time_errors(field: str, value: datetime | None, now: datetime) -> list[str]:
    if value is None:
        return []
    if value.tzinfo is None or value.utcoffset() is None:
        return [f"{field}: {value.isoformat()} has no timezone offset (use UTC, e.g. ...Z)"]
    if value <= now:
        return [f"{field}: {_iso(value)} is not after the current time {_iso(now)}"]
    return []


def _confidence_errors(confidence: float) -> list[str]:
    if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        return [f"confidence: {confidence} is outside [0, 1]"]
    return []


def _clamp_confidence(confidence: float, notes: list[str]) -> float:
    if not _confidence_errors(confidence):
        return confidence
    clamped = 0.0 if math.isnan(confidence) else min(max(confidence, 0.0), 1.0)
    notes.append(f"confidence {confidence} clamped to {clamped}")
    return clamped


def _iso(value: datetime | None) -> str:
    if value is None:
        return "null"
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
